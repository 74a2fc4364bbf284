"""Container networking: IPAM, the bridge and macvlan drivers, namespaces, nftables rules,
published ports and the embedded DNS server."""
