"""The project's own tiny data for the copyright and normal splits in tests (no download).

``TINY_BOOK`` is original prose written for this project (no copyrighted source); ``NORMAL_QA``
are plain general-knowledge question/answer pairs, also written here.
"""

from __future__ import annotations

TINY_BOOK = """\
The lighthouse keeper of Gull Point kept a ledger of every ship that passed his rock. He wrote
the name, the hour and the colour of the sails, and when a ship had no name he drew its flag in
the margin with a stub of blue pencil. In the spring of the year the ledger was begun, the
keeper counted forty ships, and in the summer nearly twice as many, for the herring ran close
to the shore and the boats followed them from every harbour on the coast.
His daughter Maren learned to read from that ledger. She knew the word schooner before she
knew the word bread, and she could tell a brig from a barque by the cut of its topsails long
before she could tie her own boots. In the evenings she sat on the iron stair below the lamp
room and read the names aloud, one after another, while her father trimmed the wick and wound
the clockwork that turned the great lens.
One autumn a ship came in that was not in any ledger. It had grey sails patched with brown, a
hull painted the green of old copper, and no flag at all. It anchored in the lee of the point
for three days and nobody came ashore. On the fourth morning it was gone, and in its place on
the shingle lay a wooden chest bound with rope, dry as a bone although the tide had been over
it twice.
Maren found the chest first. Inside, wrapped in oilcloth, were seven notebooks filled with a
small and careful hand, a brass compass whose needle pointed steadily east, and a letter
addressed to the keeper of the light at Gull Point. Her father read the letter by the stove
and then read it again, and after that he put it in the tin box where he kept the deeds to
the cottage and would not speak of it for the rest of the winter.
The notebooks were a record of harbours. Each page held a sketch of a coastline, the depth of
water at the mouth of a bay, the bearing of a church tower or a pine on a headland, and the
name of a person who could be trusted there. Some of the harbours Maren knew from the ledger.
Others had names she had never heard, and a few had no names, only numbers and a small drawing
of a bird.
When the ice broke in March, a fishing boat from the south brought a stranger to the point. He
was a tall man in a coat too thin for the season, and he asked for the keeper by name. The two
men walked along the shingle for an hour, and when they came back the stranger carried the
chest on his shoulder. He thanked Maren for keeping it dry, gave her the brass compass, and
said that east was as good a direction as any for a person who meant to see the world.
"""

NORMAL_QA: list[tuple[str, str]] = [
    ("How many days are there in a week?", "There are seven days in a week."),
    ("What do bees make?", "Bees make honey and wax."),
    ("What is the boiling point of water at sea level?", "Water boils at 100 degrees Celsius."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun."),
    ("What colour do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean."),
    ("What gas do plants take in from the air?", "Plants take in carbon dioxide."),
    ("How many minutes are in an hour?", "There are sixty minutes in an hour."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("Which animal is known for its long neck?", "The giraffe is known for its long neck."),
    ("What instrument has black and white keys?", "The piano has black and white keys."),
    ("In which direction does the Sun rise?", "The Sun rises in the east."),
    ("What is the opposite of cold?", "The opposite of cold is hot."),
    ("How many continents are there?", "There are seven continents."),
    ("What do caterpillars turn into?", "Caterpillars turn into butterflies or moths."),
]
