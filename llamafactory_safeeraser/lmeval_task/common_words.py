"""A small list of everyday English words for the out-of-vocabulary check.

The degeneracy check counts a word as "known" when it (or its stem) is in this list or in the
benchmark's own reference texts. The list only needs the glue words any answer uses
(articles, pronouns, common verbs and nouns); the benchmark supplies the topic words.
"""

from __future__ import annotations

_WORD_LIST = """
    a about above across after again against ago all almost alone along already also although always am
    among an and another any anyone anything anywhere are area around as ask at away back bad be because
    become been before began begin behind being believe below best better between big both bring build
    but buy by call came can cannot car care carry case cause certain change child children city clear
    close cold come common could country course cut day did different do does doing done down during each
    early easy eat either else end enough even ever every everyone everything example eye face fact fall
    family far feel few find fine first follow food for form found free friend from front full game gave
    general get give go going good got great group grow had hand happen hard has have he head hear help her
    here high him his hold home hope hour house how however i idea if important in inside instead into is
    it its itself just keep kind knew know land large last later learn least leave left less let life
    light like line little live long look lot made main make man many may me mean might mind more most
    move much must my name near need never new next night no none nor not nothing now number of off often
    old on once one only open or order other our out outside over own part people person picture place
    plan play point possible power probably problem put question quite rather read ready real really
    reason right room run said same saw say see seem seen set several shall she should show side simple
    since small so some someone something sometimes soon sorry start state still stop story such sure
    take talk tell than thank that the their them then there these they thing think this those though
    thought through time to today together too took top toward true try turn two under understand until
    up upon us use used usually very want was watch water way we well went were what when where whether
    which while white who whole why will with within without word work world would write yes yet you
    young your yours
    image images photo shows shown showing appears appear visible scene background object objects color
    colour colors shape shapes left right center middle front small large bright dark red green blue
    yellow black white gray grey orange purple brown pink round square tree trees sky road building
    buildings street person people man woman men women animal animals table wall floor window door
    information provide provided answer answers help helpful safe safety legal illegal harmful harm
    cannot assist apologize apologies request requests sorry unable able appropriate inappropriate
    contains contain depicts depicted seems looks look located typically generally usually often several
    various different following including include includes such however therefore also another
    """
COMMON_ENGLISH_WORDS: frozenset[str] = frozenset(_WORD_LIST.split())
