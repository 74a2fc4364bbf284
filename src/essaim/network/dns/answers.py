"""From a client's query to the embedded server's own response, as dockerd's resolver builds
it: A, AAAA, MX and PTR for the names of the sandbox's networks; None means forward it."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from essaim.network.dns.names import NameTable

RESPONSE_TTL = 600  # dockerd's respTTL, for every record it answers itself
UDP_MIN_SIZE = 512  # what a client without EDNS can receive (RFC 1035)
TCP_MAX_SIZE = 65535


def parse_query(wire: bytes) -> dns.message.Message | None:
    """The query in a client's packet, or None to drop it (not DNS, or a response)."""
    try:
        message = dns.message.from_wire(wire)
    except Exception:  # untrusted bytes: any way the codec refuses them means drop
        return None
    if message.flags & dns.flags.QR:
        return None
    return message


def max_response_size(query: dns.message.Message, over_tcp: bool) -> int:
    """The largest response the client can take: its EDNS payload over UDP, at least 512."""
    if over_tcp:
        return TCP_MAX_SIZE
    return max(UDP_MIN_SIZE, query.payload if query.edns >= 0 else 0)


def error_response(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response


def refusal(query: dns.message.Message) -> dns.message.Message | None:
    """The error a query gets before any lookup (as the Go DNS server dockerd runs on answers
    on its own), or None when it is a well-formed standard query."""
    if query.opcode() != dns.opcode.QUERY:
        return error_response(query, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return error_response(query, dns.rcode.FORMERR)
    return None


def _answer(query: dns.message.Message) -> dns.message.Message:
    return dns.message.make_response(query, recursion_available=True)


def _reverse_address(name: dns.name.Name) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(dns.reversename.to_address(name))
    except (dns.exception.SyntaxError, ValueError):  # IPv6, partial or not a reverse name
        return None


def local_answer(
    table: NameTable, networks: Sequence[str], query: dns.message.Message
) -> dns.message.Message | None:
    """The response for a query about one of our names, or None: not ours, forward it."""
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return None
    qname = question.name
    if question.rdtype == dns.rdatatype.PTR:
        address = _reverse_address(qname)
        host = None if address is None else table.reverse(networks, address)
        if host is None:
            return None
        response = _answer(query)
        target = dns.name.from_text(host)
        response.answer.append(
            dns.rrset.from_rdata(
                qname,
                RESPONSE_TTL,
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.PTR, target.to_text()),
            )
        )
        return response
    if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX):
        return None
    name = qname.to_text(omit_final_dot=True)
    if question.rdtype != dns.rdatatype.A:
        # AAAA: the name is ours but has no IPv6 address, NODATA (forwarding it would leak
        # the name upstream). MX: NOERROR with no record is RFC 5321's "implicit MX".
        return _answer(query) if table.knows(networks, name) else None
    addresses = table.resolve(networks, name)
    if addresses is None:
        return None
    response = _answer(query)
    response.answer.append(
        dns.rrset.from_rdata_list(
            qname,
            RESPONSE_TTL,
            [
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, str(address))
                for address in addresses
            ],
        )
    )
    return response


def render(response: dns.message.Message, max_size: int) -> bytes:
    """The response's wire form in `max_size` bytes: answers that do not fit are dropped one
    by one and TC set, so the client keeps what fits (as dockerd) and may retry over TCP.
    Records keep their order (dnspython shuffles by default): the table's round robin, or
    the upstream's."""
    try:
        return response.to_wire(max_size=max_size, want_shuffle=False)
    except dns.exception.TooBig:
        pass
    records = [(rrset.name, rrset.ttl, rdata) for rrset in response.answer for rdata in rrset]
    response.flags |= dns.flags.TC
    # The largest prefix of the answers that fits: a binary search over its length.
    low, high = 0, len(records) - 1
    best: bytes | None = None
    while low <= high:
        keep = (low + high) // 2
        response.answer = _rrsets(records[:keep])
        try:
            best = response.to_wire(max_size=max_size, want_shuffle=False)
            low = keep + 1
        except dns.exception.TooBig:
            high = keep - 1
    if best is None:
        response.answer = []
        best = response.to_wire(max_size=max_size, prefer_truncation=True, want_shuffle=False)
    return best


def _rrsets(
    records: list[tuple[dns.name.Name, int, dns.rdata.Rdata]],
) -> list[dns.rrset.RRset]:
    rrsets: list[dns.rrset.RRset] = []
    for name, ttl, rdata in records:
        if rrsets and rrsets[-1].name == name and rrsets[-1].rdtype == rdata.rdtype:
            rrsets[-1].add(rdata)
        else:
            rrsets.append(dns.rrset.from_rdata(name, ttl, rdata))
    return rrsets
