"""The embedded DNS server's name table: names scoped per network, `name.network`, shared
aliases answered in turn, records replaced and removed, reverse lookups."""

from __future__ import annotations

from ipaddress import IPv4Address

from essaim.network.dns.names import DnsRecord, NameTable

FRONT = "f" * 64
BACK = "b" * 64


def record(
    container: str, address: str, *aliases: str, network: str = FRONT, name: str = "front"
) -> DnsRecord:
    container_id = container[0] * 64
    return DnsRecord(
        network_id=network,
        network_name=name,
        container_id=container_id,
        names=(container, *aliases, container_id[:12]),
        address=IPv4Address(address),
    )


def table(*records: DnsRecord) -> NameTable:
    names = NameTable()
    for one in records:
        names.set_endpoint(one)
    return names


def test_name_resolves_on_the_sandboxs_network() -> None:
    names = table(record("web", "10.213.1.2"))
    assert names.resolve([FRONT], "web") == [IPv4Address("10.213.1.2")]


def test_names_match_case_insensitively_with_or_without_final_dot() -> None:
    names = table(record("Web", "10.213.1.2", "API"))
    assert names.resolve([FRONT], "WEB.") == [IPv4Address("10.213.1.2")]
    assert names.resolve([FRONT], "api") == [IPv4Address("10.213.1.2")]


def test_short_id_and_aliases_resolve() -> None:
    names = table(record("web", "10.213.1.2", "www"))
    assert names.resolve([FRONT], "w" * 12) == [IPv4Address("10.213.1.2")]
    assert names.resolve([FRONT], "www") == [IPv4Address("10.213.1.2")]


def test_name_on_a_network_the_sandbox_is_not_on_is_not_ours() -> None:
    names = table(record("web", "10.213.1.2"))
    assert names.resolve([BACK], "web") is None
    assert names.resolve([], "web") is None


def test_unknown_name_is_not_ours() -> None:
    names = table(record("web", "10.213.1.2"))
    assert names.resolve([FRONT], "db") is None
    assert names.resolve([FRONT], "example.com") is None


def test_name_dot_network_resolves_on_that_network_only() -> None:
    names = table(
        record("web", "10.213.1.2"),
        record("web", "10.213.2.2", network=BACK, name="back"),
    )
    both = [FRONT, BACK]
    assert names.resolve(both, "web.back") == [IPv4Address("10.213.2.2")]
    assert names.resolve(both, "web.front") == [IPv4Address("10.213.1.2")]
    assert names.resolve([FRONT], "web.back") is None
    assert names.resolve(both, "web.nowhere") is None


def test_network_names_may_hold_dots() -> None:
    names = table(record("web", "10.213.1.2", network=BACK, name="my.back.net"))
    assert names.resolve([BACK], "web.my.back.net") == [IPv4Address("10.213.1.2")]


def test_first_connected_network_with_the_name_answers() -> None:
    names = table(
        record("web", "10.213.1.2"),
        record("web", "10.213.2.2", network=BACK, name="back"),
    )
    assert names.resolve([BACK, FRONT], "web") == [IPv4Address("10.213.2.2")]
    assert names.resolve([FRONT, BACK], "web") == [IPv4Address("10.213.1.2")]


def test_shared_alias_answers_every_holder_in_turn() -> None:
    names = table(
        record("a1", "10.213.1.2", "api"),
        record("b1", "10.213.1.3", "api"),
        record("c1", "10.213.1.4", "api"),
    )
    answers = [names.resolve([FRONT], "api") for _ in range(3)]
    expected = {IPv4Address(f"10.213.1.{n}") for n in (2, 3, 4)}
    assert all(answer is not None and set(answer) == expected for answer in answers)
    firsts = [answer[0] for answer in answers if answer]
    assert len(set(firsts)) == 3  # each holder comes first once in three answers


def test_knows_does_not_take_a_turn() -> None:
    names = table(record("a1", "10.213.1.2", "api"), record("b1", "10.213.1.3", "api"))
    firsts = []
    for _ in range(2):
        assert names.knows([FRONT], "api")  # as a client's AAAA query beside each A
        answer = names.resolve([FRONT], "api")
        assert answer is not None
        firsts.append(answer[0])
    assert firsts[0] != firsts[1]
    assert not names.knows([FRONT], "nothing")
    assert not names.knows([BACK], "api")


def test_replaced_endpoint_answers_its_new_address_and_names() -> None:
    names = table(record("web", "10.213.1.2", "old"))
    names.set_endpoint(record("web", "10.213.1.9", "new"))
    assert names.resolve([FRONT], "web") == [IPv4Address("10.213.1.9")]
    assert names.resolve([FRONT], "old") is None
    assert names.resolve([FRONT], "new") == [IPv4Address("10.213.1.9")]


def test_removed_endpoint_no_longer_resolves() -> None:
    names = table(record("web", "10.213.1.2", "api"), record("db", "10.213.1.3", "api"))
    names.remove_endpoint(FRONT, "w" * 64)
    assert names.resolve([FRONT], "web") is None
    assert names.resolve([FRONT], "api") == [IPv4Address("10.213.1.3")]
    names.remove_endpoint(FRONT, "w" * 64)  # twice: nothing to do
    names.remove_endpoint(BACK, "d" * 64)  # unknown network: nothing to do
    assert names.resolve([FRONT], "db") == [IPv4Address("10.213.1.3")]


def test_reverse_names_the_container_on_its_network() -> None:
    names = table(record("web", "10.213.1.2", "api"))
    assert names.reverse([FRONT], IPv4Address("10.213.1.2")) == "web.front"
    assert names.reverse([BACK], IPv4Address("10.213.1.2")) is None
    assert names.reverse([FRONT], IPv4Address("10.213.1.3")) is None
