"""A script through client -> proxy cache -> balancer -> m1/m2 gives what the engine gives.

No replication runs here (the supervisor does that), so each server only
holds the objects it owns. The script runs in one client session, so the
balancer's read-your-writes rule sends each read to the server that took
the writes; and the database name is chosen so that every object of the
script has the same owner, which lets joins and views see all their tables.
"""

from __future__ import annotations

import json

from nodes.balancer.routing import owner_of
from tests.integration.clientkit import client

OBJECTS = ("kilasy", "mpianatra", "naoty", "tsara", "taranja")

SCRIPT = """\
manamboara tahiry {db};
ampiasao {db};
manamboara efitra kilasy ( TANISA("L3","M1","L2") );
manamboara tabilao mpianatra ( id LAHATSORATRA(2,5), anarana LAHATSORATRA(null,null), kilasy kilasy,
                               teraka DATY );
manamboara tabilao naoty ( id LAHATSORATRA(2,5), taranja LAHATSORATRA(null,null), naoty ISA(0,20) );
manamboara tabilao taranja ( anarana LAHATSORATRA(1,10), koefisia ISA(1,5) );
manampia ao@ mpianatra (id, anarana, kilasy, teraka) sanda ("E1","Alice","L3","2003-04-05"),
   ("E2","Bob","M1","2001-12-31"), ("E3","Rakoto","L2",null), ("E4","Soa","L3","2002-01-01");
manampia ao@ naoty sanda ("E1","Algo",14), ("E1","BD",9), ("E2","Algo",16), ("E2","BD",null),
   ("E3","Algo",7.5), ("E9","BD",12);
manampia ao@ taranja sanda ("Algo", 3), ("BD", 2), ("Math", 4);
-- refused: the domain says L3, M1 or L2; nothing is written
manampia ao@ mpianatra sanda ("E5","Zo","D1",null), ("E6","Vola","L3",null);
manampia ao@ naoty sanda ("E5","BD",21);
alaivo * ao@ mpianatra;
alaivo * ao@ naoty alaharo naoty midina, id;
alaivo anarana, count(taranja) antso isa, avg(naoty) antso salanisa ao@ mpianatra
   #tonona:natoraly@ naoty #rehefa naoty >= 10 #vondrona (anarana) alaharo anarana;
alaivo m.anarana, n.taranja, n.naoty * t.koefisia antso isa ao@ mpianatra m
   #tonona naoty n #ka m.id = n.id #tonona taranja t #ka n.taranja = t.anarana alaharo m.anarana, n.taranja;
alaivo m.id, n.naoty ao@ mpianatra m #tonona:avia@ naoty n #ka m.id = n.id alaharo m.id, n.naoty;
alaivo m.id, n.id antso nid ao@ mpianatra m #tonona:feno@ naoty n #ka m.id = n.id
   #rehefa m.id dia null na n.id dia null alaharo nid;
alaivo kilasy, count(*), min(teraka), max(teraka) ao@ mpianatra #vondrona kilasy alaharo kilasy;
alaivo count(*), sum(naoty), avg(naoty), min(naoty), max(naoty) ao@ naoty;
alaivo * ao@ (alaivo id ao@ mpianatra ankambana alaivo id ao@ naoty) u alaharo id;
alaivo * ao@ (alaivo id ao@ mpianatra #analana@ alaivo id ao@ naoty #rehefa naoty < 10) u alaharo id;
alaivo * ao@ (alaivo id ao@ mpianatra ^ alaivo id ao@ naoty) u alaharo id;
manamboara jery tsara @ alaivo id, naoty ao@ naoty #rehefa naoty >= 14 alaharo naoty;
alaivo * ao@ tsara;
alaivo m.anarana ao@ tsara #tonona mpianatra m #ka tsara.id = m.id alaharo m.anarana;
havaozy naoty ova naoty = naoty + 1 rehefa taranja = "BD";
alaivo * ao@ tsara;
alaivo id, naoty ao@ naoty rehefa taranja = 'BD' alaharo id;
fafao ao@ naoty rehefa naoty dia null;
alaivo count(*) ao@ naoty;
alaivo * ao@ naoty alaharo id fetra 1 3;
asehoy ny tabilao;
asehoy ny jery;
asehoy ny efitra;
alaivo 7 / 2, 6 / 3, 'it''s', null, 1 + 2 * 3;
-- errors, each reported and the script goes on
alaivo * ao@ tsy_misy;
alaivo tsy_misy ao@ naoty;
alaivo id ao@ mpianatra #tonona naoty #ka mpianatra.id = naoty.id;
alaivo 1 / 0;
alaivo * ao@ naoty rehefa naoty + 'a' > 1;
alaivo * ao@ naoty rehefa;
manamboara tabilao naoty ( x ISA(0,1) );
ampiasao tsy_misy;
alaivo count(*) ao@ mpianatra;
ravao ny jery tsara;
alaivo * ao@ tsara;
alaivo 'tsy tapitra
"""


def choose_database(skip: int = 0) -> str:
    """A database name under which every object of the script has the same owner.

    skip: how many such names to pass over (for a second, distinct database).
    """
    for attempt in range(10_000):
        name = "sekoly" if attempt == 0 else f"sekoly{attempt}"
        if len({owner_of(name, obj, ["m1", "m2"]) for obj in OBJECTS}) == 1:
            if skip == 0:
                return name
            skip -= 1
    raise AssertionError("no database name puts every object on one server")


def test_chain_gives_the_same_results_as_the_embedded_engine(start_node, tmp_path):
    script = tmp_path / "script.tah"
    script.write_text(SCRIPT.format(db=choose_database()))
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}")
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{lb.port}")

    chain = client("--port", str(proxy.port), "--format", "json", "-f", str(script), cwd=tmp_path)
    embedded = client("--embedded", str(tmp_path / "embedded"), "--format", "json", "-f",
                      str(script), cwd=tmp_path)

    assert chain.stderr == "" and embedded.stderr == ""
    assert chain.stdout.splitlines() == embedded.stdout.splitlines()
    assert chain.returncode == embedded.returncode == 1
    results = [json.loads(line) for line in chain.stdout.splitlines()]
    assert len(results) == SCRIPT.count(";")   # one ";" is in a comment, one statement has none
    failed = [i for i, result in enumerate(results) if not result["ok"]]
    # The two refused inserts and the ten error statements at the end.
    assert len(failed) == 12, results
    joined = results[14]
    assert joined["columns"] == ["anarana", "taranja", "isa"]
    assert ["Alice", "Algo", 42] in joined["rows"]
    assert results[-4]["rows"] == [[4]]          # mpianatra still has its 4 rows

    # Drawn as tables, in a second session on another database, the same too.
    second = choose_database(skip=1)
    script.write_text(SCRIPT.format(db=second))
    tables = client("--port", str(proxy.port), "-f", str(script), cwd=tmp_path)
    local = client("--embedded", str(tmp_path / "embedded2"), "-f", str(script), cwd=tmp_path)
    assert tables.returncode == local.returncode == 1
    assert tables.stdout == local.stdout
    assert "| E4 | Soa     | L3     | 2002-01-01 |" in tables.stdout
