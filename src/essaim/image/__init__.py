"""Images: references, the content store, the image index, layer snapshots and overlay
mounts, import and the built-in busybox image; `service.ImageService` is the façade.
"""
