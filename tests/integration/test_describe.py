"""`asehoy ny tsanganana [ao@ T]` through every node: server, balancer, proxy cache."""

from __future__ import annotations

from tests.integration.wire import WireClient, setup_school, start_balanced_pair

DESCRIBE = "asehoy ny tsanganana ao@ t;"
T_COLUMNS = [["id", "ISA(null,null)"], ["anarana", "LAHATSORATRA(null,null)"]]


def test_describe_through_a_server(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as client:
        assert client.one(DESCRIBE).message == "Hadisoana : Tsy nisafidy tahiry ianao"
        setup_school(client)
        response = client.ok(DESCRIBE)
        assert [c.name for c in response.relation.columns] == ["tsanganana", "efitra"]
        assert response.relation.rows == T_COLUMNS
        assert client.rows("asehoy ny tsanganana;") == [["t", "tabilao", *row] for row in T_COLUMNS]


def test_describe_through_the_balancer_is_a_read_that_sees_the_sessions_table(start_node):
    _, _, lb = start_balanced_pair(start_node)
    with WireClient(lb.port) as client:
        setup_school(client)
        for _ in range(6):  # reads go to either server: each must see t
            assert client.rows(DESCRIBE) == T_COLUMNS
        assert client.status()["backends"]


def test_the_proxy_cache_drops_a_describe_when_the_table_changes(start_node):
    for fine in ((), ("--fine-invalidation",)):
        server = start_node("server", f"s{len(fine)}", "--data", f"data/s{len(fine)}")
        proxy = start_node("proxycache", f"p{len(fine)}", "--upstream",
                           f"127.0.0.1:{server.port}", "--ttl-ms", "60000", *fine)
        with WireClient(proxy.port) as client:
            setup_school(client)
            assert client.rows(DESCRIBE) == T_COLUMNS
            assert client.rows(DESCRIBE) == T_COLUMNS
            assert client.status()["hits"] == 1
            client.ok("ravao ny tabilao t;")
            client.ok("manamboara tabilao t (x DATY);")
            assert client.rows(DESCRIBE) == [["x", "DATY"]], fine


def test_with_fine_invalidation_a_new_table_shows_in_the_list_of_everything(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{server.port}",
                       "--ttl-ms", "60000", "--fine-invalidation")
    with WireClient(proxy.port) as client:
        setup_school(client)
        assert [row[0] for row in client.rows("asehoy ny tsanganana;")] == ["t", "t"]
        client.ok("manamboara tabilao u (x DATY);")
        assert [row[0] for row in client.rows("asehoy ny tsanganana;")] == ["t", "t", "u"]
