"""The packet filter of the bridge driver: nftables rules for published ports, masquerade,
isolation and inter-container communication, and the host ports that published ports hold."""
