"""The Engine API: an HTTP/1.1 server (h11 on asyncio streams) and one module per
resource group translating wire JSON to calls on the services. No business logic here.
"""
