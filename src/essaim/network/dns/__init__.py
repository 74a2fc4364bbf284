"""Docker's embedded DNS server (127.0.0.11 in each sandbox): the name table, the answers it
makes itself, forwarding to upstream resolvers, and the sockets serving it."""
