"""Query scripts shared by several engine tests.

`LANGUAGE_EXAMPLE` is the example script of LANGUAGE.md section 6, written
once: the parser tests check the AST it parses to, the session tests check
what it does when it runs.
"""

LANGUAGE_EXAMPLE = """\
manamboara tahiry sekoly;
ampiasao sekoly;
manamboara efitra kilasy ( TANISA("L3","M1","L2") );
manamboara tabilao mpianatra ( id LAHATSORATRA(2,5), anarana LAHATSORATRA(null,null), kilasy kilasy );
manamboara tabilao naoty ( id LAHATSORATRA(2,5), taranja LAHATSORATRA(null,null), naoty ISA(0,20) );
manampia ao@ mpianatra (id, anarana, kilasy) sanda ("E1","Alice","L3"), ("E2","Bob","M1");
manampia ao@ naoty sanda ("E1","Algo",14), ("E1","BD",9), ("E2","Algo",16);
alaivo anarana, count(taranja) antso isa, avg(naoty) ao@ mpianatra
  #tonona:natoraly@ naoty #rehefa naoty >= 10 #vondrona (anarana) alaharo anarana;
alaivo id ao@ mpianatra #analana@ alaivo id ao@ naoty #rehefa naoty < 10;
manamboara jery tsara @ alaivo * ao@ naoty #rehefa naoty >= 15;
havaozy naoty ova naoty = naoty + 1 rehefa taranja = "BD";
fafao ao@ naoty rehefa naoty dia null;
"""
