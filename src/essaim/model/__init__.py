"""Typed objects of the engine (containers, images, networks ...) and their state machines.

Pure data: nothing here does I/O or imports another essaim package.
"""
