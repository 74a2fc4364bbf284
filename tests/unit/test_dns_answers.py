"""The responses the embedded DNS server makes itself, read back with dnspython: records
and TTLs, NODATA, rcodes, the client's id kept, what is left to forward, truncation."""

from __future__ import annotations

from ipaddress import IPv4Address

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from essaim.network.dns.answers import (
    error_response,
    local_answer,
    max_response_size,
    parse_query,
    refusal,
    render,
)
from essaim.network.dns.names import DnsRecord, NameTable

NET = "n" * 64


def names_with(*entries: tuple[str, str]) -> NameTable:
    names = NameTable()
    for number, (name, address) in enumerate(entries):
        container_id = f"{number:064x}"
        names.set_endpoint(
            DnsRecord(NET, "appnet", container_id, (name, "shared"), IPv4Address(address))
        )
    return names


NAMES = names_with(("web", "10.213.7.2"), ("db", "10.213.7.3"))


def ask(name: str, rdtype: str = "A", **options: object) -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype, **options)  # type: ignore[arg-type]
    return local_answer(NAMES, [NET], query)


def addresses(response: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in response.answer for rdata in rrset]


def test_a_record_for_a_container_name_with_dockers_ttl_and_the_clients_id() -> None:
    query = dns.message.make_query("web", "A")
    response = local_answer(NAMES, [NET], query)
    assert response is not None
    wire = dns.message.from_wire(render(response, 512))
    assert wire.id == query.id
    assert wire.rcode() == dns.rcode.NOERROR
    assert wire.flags & dns.flags.QR and wire.flags & dns.flags.RA
    assert wire.flags & dns.flags.RD  # copied from the query
    assert wire.question == query.question
    assert addresses(wire) == ["10.213.7.2"]
    assert wire.answer[0].ttl == 600
    assert wire.answer[0].name == query.question[0].name


def test_shared_name_answers_every_address() -> None:
    response = ask("shared")
    assert response is not None
    assert sorted(addresses(response)) == ["10.213.7.2", "10.213.7.3"]


def test_shared_name_answers_in_turn_in_the_order_sent() -> None:
    names = names_with(("a", "10.213.7.2"), ("b", "10.213.7.3"), ("c", "10.213.7.4"))
    firsts = []
    for _ in range(3):
        response = local_answer(names, [NET], dns.message.make_query("shared", "A"))
        assert response is not None
        sent = dns.message.from_wire(render(response, 512), one_rr_per_rrset=True)
        firsts.append(addresses(sent)[0])
    assert sorted(firsts) == ["10.213.7.2", "10.213.7.3", "10.213.7.4"]


def test_aaaa_queries_between_a_queries_do_not_stall_the_round_robin() -> None:
    names = names_with(("a", "10.213.7.2"), ("b", "10.213.7.3"))
    firsts = []
    for _ in range(2):
        for rdtype in ("A", "AAAA"):  # as getaddrinfo asks, for each lookup
            response = local_answer(names, [NET], dns.message.make_query("shared", rdtype))
            assert response is not None
            if rdtype == "A":
                firsts.append(addresses(response)[0])
    assert firsts[0] != firsts[1]


def test_aaaa_for_a_known_ipv4_only_name_is_nodata_not_forwarded() -> None:
    response = ask("web", "AAAA")
    assert response is not None
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []


def test_mx_for_a_known_name_is_an_empty_noerror() -> None:
    response = ask("db", "MX")
    assert response is not None
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("example.com", "A"), ("example.com", "AAAA"), ("web", "TXT"), ("web", "SRV")],
)
def test_other_names_and_types_are_left_to_forward(name: str, rdtype: str) -> None:
    assert ask(name, rdtype) is None


def test_names_of_other_networks_are_left_to_forward() -> None:
    query = dns.message.make_query("web", "A")
    assert local_answer(NAMES, ["o" * 64], query) is None


def test_chaos_class_is_left_to_forward() -> None:
    query = dns.message.make_query("web", "A", rdclass="CH")
    assert local_answer(NAMES, [NET], query) is None


def test_ptr_names_the_container_on_its_network() -> None:
    reverse = dns.reversename.from_address("10.213.7.3")
    response = ask(reverse.to_text(), "PTR")
    assert response is not None
    assert addresses(response) == ["db.appnet."]
    assert response.answer[0].ttl == 600
    assert response.answer[0].name == reverse


@pytest.mark.parametrize(
    "name",
    [
        dns.reversename.from_address("10.213.7.99").to_text(),  # no such container
        dns.reversename.from_address("fd00::1").to_text(),  # IPv6: none of ours
        "7.213.10.in-addr.arpa.",  # a partial reverse name
        "web.",  # not a reverse name
    ],
)
def test_ptr_not_about_our_addresses_is_left_to_forward(name: str) -> None:
    assert ask(name, "PTR") is None


def test_parse_query_drops_what_is_not_a_query() -> None:
    query = dns.message.make_query("web", "A")
    assert parse_query(query.to_wire()) is not None
    assert parse_query(b"") is None
    assert parse_query(b"\x00\x01garbage") is None
    assert parse_query(query.to_wire()[:-3]) is None  # cut in the question
    response = dns.message.make_response(query)
    assert parse_query(response.to_wire()) is None  # a response, not a query


def test_queries_with_two_questions_get_formerr() -> None:
    query = dns.message.make_query("web", "A")
    query.question.append(dns.message.make_query("db", "A").question[0])
    refused = refusal(query)
    assert refused is not None
    assert refused.rcode() == dns.rcode.FORMERR
    assert refused.id == query.id


def test_other_opcodes_get_notimp() -> None:
    query = dns.message.make_query("web", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    refused = refusal(query)
    assert refused is not None
    assert refused.rcode() == dns.rcode.NOTIMP
    assert refusal(dns.message.make_query("web", "A")) is None


def test_error_response_keeps_the_id_and_question() -> None:
    query = dns.message.make_query("example.com", "A")
    wire = dns.message.from_wire(render(error_response(query, dns.rcode.SERVFAIL), 512))
    assert wire.id == query.id
    assert wire.rcode() == dns.rcode.SERVFAIL
    assert wire.question == query.question


def test_max_response_size_follows_the_clients_edns_payload() -> None:
    plain = dns.message.make_query("web", "A")
    assert max_response_size(plain, over_tcp=False) == 512
    assert max_response_size(plain, over_tcp=True) == 65535
    edns = dns.message.make_query("web", "A", use_edns=0, payload=4096)
    assert max_response_size(edns, over_tcp=False) == 4096
    small = dns.message.make_query("web", "A", use_edns=0, payload=256)
    assert max_response_size(small, over_tcp=False) == 512


MANY = names_with(*((f"r{n}", f"10.213.8.{n}") for n in range(1, 101)))


def test_too_many_answers_for_udp_keeps_what_fits_and_sets_tc() -> None:
    query = dns.message.make_query("shared", "A")
    response = local_answer(MANY, [NET], query)
    assert response is not None
    wire = render(response, max_response_size(query, over_tcp=False))
    assert len(wire) <= 512
    truncated = dns.message.from_wire(wire)
    assert truncated.flags & dns.flags.TC
    assert 0 < len(addresses(truncated)) < 100
    assert truncated.id == query.id


def test_all_answers_fit_a_large_edns_buffer_or_tcp() -> None:
    for query, over_tcp in [
        (dns.message.make_query("shared", "A", use_edns=0, payload=4096), False),
        (dns.message.make_query("shared", "A"), True),
    ]:
        response = local_answer(MANY, [NET], query)
        assert response is not None
        whole = dns.message.from_wire(render(response, max_response_size(query, over_tcp)))
        assert not whole.flags & dns.flags.TC
        assert len(addresses(whole)) == 100
