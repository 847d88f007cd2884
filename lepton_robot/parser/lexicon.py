"""
The parser's word lists: domain words, slot synonyms, number words and common words.

Slot synonym tables follow ``shared/spec/commands.md`` and extend it with the wording
operators use. They serve three consumers: the typo corrector (domain words are the
correction targets), the slot canonicaliser and the corpus generator.
"""

from typing import Dict, FrozenSet

#: surface word -> canonical defect
DEFECT_WORDS: Dict[str, str] = {
    'scratch': 'scratch', 'scratched': 'scratch', 'scratches': 'scratch',
    'scratchy': 'scratch', 'scuffed': 'scratch', 'scuff': 'scratch', 'scuffs': 'scratch',
    'scored': 'scratch',
    'crack': 'crack', 'cracked': 'crack', 'cracks': 'crack', 'fractured': 'crack',
    'fracture': 'crack', 'split': 'crack',
    'stain': 'stain', 'stained': 'stain', 'stains': 'stain', 'dirty': 'stain',
    'smudged': 'stain', 'smudge': 'stain', 'smudges': 'stain', 'spotted': 'stain',
    'discolored': 'stain', 'discoloured': 'stain', 'marked': 'stain',
    'chip': 'chip', 'chipped': 'chip', 'chips': 'chip', 'nicked': 'chip', 'nick': 'chip',
    'dented': 'chip',
    'defective': 'any', 'defect': 'any', 'defects': 'any', 'bad': 'any', 'faulty': 'any',
    'damaged': 'any', 'broken': 'any', 'flawed': 'any', 'failed': 'any', 'failing': 'any',
    'nok': 'any', 'nogood': 'any', 'flaw': 'any', 'flaws': 'any', 'fault': 'any',
    'faults': 'any', 'damage': 'any', 'dirt': 'stain', 'marks': 'stain',
    'reject': 'any', 'rejects': 'any', 'rejected': 'any',
    'good': 'none', 'ok': 'none', 'okay': 'none', 'flawless': 'none', 'clean': 'none',
    'perfect': 'none', 'fine': 'none', 'intact': 'none', 'passing': 'none',
    'undamaged': 'none', 'passed': 'none', 'healthy': 'none', 'acceptable': 'none',
}

COLOR_WORDS: Dict[str, str] = {
    'red': 'red', 'reddish': 'red', 'green': 'green', 'greenish': 'green', 'blue': 'blue',
    'bluish': 'blue', 'yellow': 'yellow', 'yellowish': 'yellow', 'gray': 'gray',
    'grey': 'gray', 'greyish': 'gray', 'grayish': 'gray', 'silver': 'gray',
}

#: colours and shapes the cell does not make: a filter the operator states must not be dropped
#: (``put the orange parts in reject`` would otherwise be a rule for every part)
OTHER_COLORS = frozenset("""
purple violet orange pink black white brown cyan magenta turquoise beige maroon navy teal
gold golden copper bronze indigo lilac lavender crimson scarlet
""".split())
OTHER_SHAPES = frozenset("""
sphere spheres ball balls cone cones pyramid pyramids ring rings triangle triangles star
stars hexagon hexagons gear gears spring springs washer washers nut nuts screw screws
""".split())

SHAPE_WORDS: Dict[str, str] = {
    'block': 'block', 'blocks': 'block', 'cube': 'block', 'cubes': 'block', 'box': 'block',
    'boxes': 'block', 'brick': 'block', 'bricks': 'block', 'cuboid': 'block',
    'square': 'block', 'squares': 'block',
    'cylinder': 'cylinder', 'cylinders': 'cylinder', 'cylindrical': 'cylinder',
    'can': 'cylinder', 'cans': 'cylinder', 'tube': 'cylinder', 'tubes': 'cylinder',
    'round': 'cylinder', 'rod': 'cylinder', 'rods': 'cylinder', 'canister': 'cylinder',
    'puck': 'cylinder', 'pucks': 'cylinder',
    'plate': 'plate', 'plates': 'plate', 'flat': 'plate', 'sheet': 'plate',
    'sheets': 'plate', 'tile': 'plate', 'tiles': 'plate', 'slab': 'plate', 'slabs': 'plate',
    'panel': 'plate', 'panels': 'plate',
}

#: bin words without a number
BIN_WORDS: Dict[str, str] = {
    'accept': 'accept', 'accepted': 'accept', 'pass': 'accept', 'good': 'accept',
    'ok': 'accept', 'okay': 'accept', 'keep': 'accept', 'keepers': 'accept',
    'reject': 'reject', 'rejects': 'reject', 'rejected': 'reject', 'scrap': 'reject',
    'trash': 'reject', 'garbage': 'reject', 'waste': 'reject', 'bad': 'reject',
    'junk': 'reject', 'fail': 'reject', 'nok': 'reject', 'discard': 'reject',
    'rework': 'rework', 'repair': 'rework', 'fix': 'rework', 'redo': 'rework',
    'reworked': 'rework', 'salvage': 'rework',
}
BIN_NUMBERS = {1: 'accept', 2: 'reject', 3: 'rework'}

POSITION_WORDS: Dict[str, str] = {
    'next': 'next', 'upcoming': 'next', 'following': 'next', 'coming': 'next',
    'last': 'last', 'previous': 'last', 'prior': 'last', 'preceding': 'last',
    'latest': 'last', 'recent': 'last',
    'left': 'left', 'leftmost': 'left', 'right': 'right', 'rightmost': 'right',
    'nearest': 'nearest', 'closest': 'nearest', 'near': 'nearest', 'nearby': 'nearest',
    'close': 'nearest', 'closer': 'nearest',
}

#: direction polarity words (+1 up, -1 down); 'less' flips, 'more' keeps
DIRECTION_WORDS: Dict[str, int] = {
    'faster': 1, 'fast': 1, 'quicker': 1, 'quickly': 1, 'quick': 1, 'up': 1,
    'increase': 1, 'raise': 1, 'higher': 1, 'high': 1, 'boost': 1, 'accelerate': 1,
    'strict': 1, 'stricter': 1, 'sensitive': 1, 'picky': 1, 'pickier': 1, 'tighten': 1,
    'tighter': 1, 'harsher': 1, 'harsh': 1, 'careful': 1, 'fussier': 1, 'fussy': 1,
    'more': 1, 'crank': 1, 'bump': 1, 'hurry': 1, 'rapid': 1, 'speedier': 1,
    'missing': 1, 'letting': 1, 'rejecting': 1, 'flagging': 1, 'toughen': 1,
    'sluggish': -1,
    'slower': -1, 'slow': -1, 'down': -1, 'decrease': -1, 'lower': -1, 'low': -1,
    'reduce': -1, 'relax': -1, 'relaxed': -1, 'lenient': -1, 'loosen': -1, 'looser': -1,
    'tolerant': -1, 'forgiving': -1, 'easier': -1, 'softer': -1, 'less': -1,
    'decelerate': -1, 'gentler': -1, 'slowly': -1, 'chill': -1, 'drop': -1, 'ease': -1,
}

#: keyword -> canonical query (checked in order of the keys of QUERY_ORDER)
QUERY_WORDS: Dict[str, str] = {
    'many': 'counts', 'count': 'counts', 'counts': 'counts', 'number': 'counts',
    'total': 'counts', 'tally': 'counts', 'numbers': 'counts', 'much': 'counts',
    'quantity': 'counts', 'amount': 'counts',
    'rate': 'defect_rate', 'ratio': 'defect_rate', 'percentage': 'defect_rate',
    'yield': 'defect_rate', 'fraction': 'defect_rate', 'proportion': 'defect_rate',
    'running': 'state', 'state': 'state', 'doing': 'state', 'paused': 'state',
    'stopped': 'state', 'working': 'state', 'idle': 'state', 'busy': 'state',
    'active': 'state', 'moving': 'state', 'mode': 'state', 'condition': 'state',
    'last': 'last_part', 'previous': 'last_part', 'recent': 'last_part',
    'latest': 'last_part',
}

#: number words
UNITS = {'zero': 0, 'oh': 0, 'nil': 0, 'one': 1, 'two': 2, 'three': 3, 'four': 4,
         'five': 5, 'six': 6, 'seven': 7, 'eight': 8, 'nine': 9, 'ten': 10, 'eleven': 11,
         'twelve': 12, 'thirteen': 13, 'fourteen': 14, 'fifteen': 15, 'sixteen': 16,
         'seventeen': 17, 'eighteen': 18, 'nineteen': 19}
TENS = {'twenty': 20, 'thirty': 30, 'forty': 40, 'fourty': 40, 'fifty': 50, 'sixty': 60,
        'seventy': 70, 'eighty': 80, 'ninety': 90}
ORDINALS = {'first': 1, 'second': 2, 'third': 3, 'fourth': 4, 'fifth': 5}
#: words that are a whole percentage value on their own
VALUE_WORDS = {'half': 50, 'halfway': 50, 'full': 100, 'max': 100, 'maximum': 100,
               'top': 100, 'quarter': 25, 'min': 0, 'minimum': 0, 'hundred': 100}

#: words that say "percent"
PERCENT_WORDS = frozenset({'percent', 'per', 'cent', '%', 'pct', 'percentage'})

#: intent keywords (targets of typo correction; the model decides the intent)
INTENT_WORDS = frozenset("""
start resume continue begin go ahead run restart unpause proceed carry on running launch
kick off fire get going
pause hold wait moment break freeze halt stop stopping quit cease kill abort emergency estop
sort send put move route place drop throw toss direct divert goes go bin bins
pick grab take fetch get lift remove collect
inspect check look examine scan verify recheck reinspect again analyse analyze test
speed conveyor belt faster slower slow line velocity pace rate
sensitivity threshold strictness detection detector picky strict lenient sensitive
status report tell how many what state defect rejected inspected stats statistics summary
home park return position rest retract origin pose arm robot
part parts piece pieces item items number
percent please could would you can pile tray bucket power cut
cell shut switch turn off everything system snag retrieve rescan
homing base stow
""".split())

#: words never typo-corrected (common English that must keep its own meaning)
PROTECTED_WORDS = frozenset("""
shop step stepped stops top tops slop sop spot stoop store story start
hello thanks thank weather joke music song time today tomorrow lunch coffee email
name where who why when which the this that then them they their there these those
with what were went want wants will well when your yours about above after again
also been before being both could should would does done down each from have here
into just like make more most much must only over same some such than very was
print call book order buy sell play show open close paint write read song
rain raining rainy snow snowing sunny windy
""".split())

#: common English words one or two edits from a domain word, never typo-corrected (session 12):
#: the corrector turned ``give`` into ``five``, ``pull`` into ``full``, ``come`` into ``home``,
#: ``case`` into ``cease`` (a stop), ``skill``/``bill`` into ``kill`` (an e-stop), ``quite``
#: into ``quit``, ``sorting`` into ``working``. Listed: the words of a ~2700-word list of
#: everyday English that the corrector changed to a word of another meaning.
COMMON_WORDS = frozenset("""
bare garage pluck spain
analysis apart around bake bark bass bear beat began begun bell bend bent best bias bill
bind black blast bless blow blur boast bold bolt bones booking boot boots bore boss bound
bread bright buck bull burn burning bush buys cake calling cane carts case cast casting
catches cats cause caused causing chase chat checked cheek chick child chin chop chopped
chopping chose chuck claw clear clip clock clone clue code cold college come cook cooking
core court crab crane crash crashed crop cure cute cutting dark date dawn dear deep dent
diet dine direction director dive dome dose drank drip dropped dropping drown duck ducks
dull dump east easy election else erase even example face fact fair fake fall falling fans
fate fear feast feeling fell felt field fight filed files filing fill filling find firm
fishing fist fitting flag flags flew flipped float flock flour flow flower fold food
forming fort forth fuel gain gate gear getting gift give glow glue gold gown greed greet
grew ground hail hall hate head hear heating hell hill hire hitting hole holy hood hook
hope hour hunting jail jump keen kicked kiln lace lake lane late laws leading lean lease
least leaving legs lend lens lent lets life lifting light lime linen list live lock
locking locks loft looking lose loss lost love lover loving lump made mail mailed malt
mare market marking mass mate meeting melt melting mend mess might mile mill mine mission
model mold mole mood morning moss mount movie nail nearly neat neck nest nice night none
nose pack packing packs page pail pale pant parked parking parks party past paste pays
peace pear picked picking picks pill pine pink pins pipe plane pole pork port positive
post posting pound pour powder pray present pressing prevent process pull pump pushing
putting quality quiet quilt quite quiz race rack radio rage raid rail raising rank rare
rent reset resting ringing rise roads rode rose rust sail sailed salt sand sang scent seed
sent setting sheep ship shipping shopped shopping short shot shout sick sigh sitting skate
skill skipped slam slap slipped slit slot smart smiling snap snapped soft sold sore
sorting sound sour space spark spend spit sport stage stair stake stale star stare stars
started stays stem stepping stored storing stuff stuffed suit sweet tail tale tall tape
taste tear tease tend tent testing tick tide tight till tire tires toll tour tower town
toys track tracked tracks trained trap tree trick tuck tune turning vase vault vent vest
waist waiting wake walking washing wear weight west wheat whip winning wins wire wishing
witch wood world worrying wound year yell
""".split())

NEGATIONS = frozenset({"don't", 'dont', 'not', 'never', "didn't", "doesn't", 'no', 'non',
                       'without', "won't", "shouldn't", "mustn't", 'cannot', "can't",
                       'nt', 'neither', 'nor'})


def domain_words() -> FrozenSet[str]:
    """Return every domain word: the targets of typo correction."""
    words = set(INTENT_WORDS)
    for table in (DEFECT_WORDS, COLOR_WORDS, SHAPE_WORDS, BIN_WORDS, POSITION_WORDS,
                  DIRECTION_WORDS, QUERY_WORDS, UNITS, TENS, ORDINALS, VALUE_WORDS):
        words.update(table)
    words.update(w for w in PERCENT_WORDS if w.isalpha())
    return frozenset(words)


def slot_words() -> FrozenSet[str]:
    """Return the words that state a slot value (preferred typo-correction targets)."""
    words = set()
    for table in (DEFECT_WORDS, COLOR_WORDS, SHAPE_WORDS, BIN_WORDS, POSITION_WORDS,
                  DIRECTION_WORDS, UNITS, TENS, ORDINALS, VALUE_WORDS):
        words.update(table)
    return frozenset(words)
