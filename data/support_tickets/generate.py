"""Generate the synthetic, dated support-ticket dataset (tickets.csv).

Every ticket is made from hand-written templates whose slots are filled from
vocabulary lists.  Each template and each word carries the range of periods in
which it is used, so the wording drifts: product names, features and slang
change, and some class-indicative words of the first period (``broken``,
``refund``, ``excellent``, ``kindly advise``) give way to new ones
(``bricked``, ``chargeback``, ``slaps``, ``anyone know``).  A core vocabulary
is shared by all periods.

Only the standard library is used; the same seed gives a byte-identical file.

    python data/support_tickets/generate.py [--out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date, timedelta
from pathlib import Path

DEFAULT_SEED = 2023
DEFAULT_OUT = Path(__file__).with_name("tickets.csv")
COLUMNS = ("id", "date", "period", "text", "label", "product")
LABELS = ("complaint", "praise", "question")
PERIODS = ("2023-H1", "2023-H2", "2024-H1", "2024-H2", "2025-H1")
# Rows per period and class: roughly balanced, complaints slowly grow.
CLASS_COUNTS = {
    "2023-H1": {"complaint": 200, "praise": 195, "question": 205},
    "2023-H2": {"complaint": 205, "praise": 195, "question": 200},
    "2024-H1": {"complaint": 210, "praise": 190, "question": 200},
    "2024-H2": {"complaint": 215, "praise": 185, "question": 200},
    "2025-H1": {"complaint": 220, "praise": 180, "question": 200},
}
MIN_WORDS, MAX_WORDS = 5, 60
ALL = (0, len(PERIODS) - 1)


def span(first: int, last: int, *items: str) -> list[tuple[str, int, int]]:
    """Tag items with the first and last period index (inclusive) they appear in."""
    return [(item, first, last) for item in items]


# Slot vocabulary: name -> [(text, first period, last period)].
SLOTS = {
    "product": span(0, 1, "Nimbus X1", "Nimbus X1 Lite", "AeroBuds 2")
    + span(0, 2, "HomeHub Mini", "Lumen Tab 8")
    + span(1, 3, "Nimbus X2", "Lumen Tab 10", "Pulse Watch")
    + span(2, 4, "Nimbus X2 Pro", "AeroBuds 3", "HomeHub Max")
    + span(3, 4, "Nimbus X3", "AeroBuds 3 Pro", "Pulse Watch 2", "Lumen Fold")
    + span(4, 4, "Nimbus X3 Pro", "AeroBuds 4", "Pulse Ring", "Lumen Fold 2"),
    "feature": span(0, 4, "battery", "screen", "camera", "speaker", "touchscreen")
    + span(0, 1, "headphone jack", "SD card slot", "micro-USB port")
    + span(0, 2, "firmware", "bluetooth pairing", "charger", "shipping")
    + span(1, 4, "fast charging", "USB-C port", "wireless charging", "companion app")
    + span(2, 4, "cloud backup", "Smart Summary", "AI assistant", "AI wallpaper")
    + span(3, 4, "eSIM", "satellite SOS", "on-device AI", "live translate", "passkey sign-in"),
    "category": span(*ALL, "phone", "tablet", "pair of earbuds", "gadget", "smartwatch"),
    "accessory": span(*ALL, "my car", "a USB-C hub", "my smart TV", "my old charger")
    + span(0, 1, "a memory card", "wired headphones")
    + span(2, 4, "my AeroBuds", "a MagSafe stand"),
    "country": span(*ALL, "Canada", "Germany", "Australia", "the UK", "Mexico", "Japan"),
    "agent": span(*ALL, "Priya", "Tom", "Lena", "Marco", "Aisha", "Jonas"),
    "thing": span(*ALL, "water damage", "a cracked screen", "the charger", "battery wear"),
    "plan": span(2, 4, "Nimbus+", "Nimbus+ Family") + span(3, 4, "Nimbus One", "Nimbus AI Pro"),
    "ago": span(*ALL, "last week", "a month ago", "two weeks ago", "in March", "yesterday"),
    # Complaint words.
    "neg": span(*ALL, "terrible", "awful", "useless", "disappointing")
    + span(0, 1, "broken", "defective", "faulty", "damaged", "poor quality")
    + span(2, 4, "janky", "buggy")
    + span(3, 4, "mid", "trash", "cooked", "a ripoff", "straight up garbage"),
    "fail": span(*ALL, "stopped working", "keeps crashing", "keeps freezing")
    + span(0, 1, "died", "will not turn on", "overheats", "is broken")
    + span(2, 4, "glitches nonstop", "lags like crazy")
    + span(3, 4, "bricked itself", "is cooked", "bugs out every day"),
    "demand": span(*ALL, "I want my money back.", "Please escalate this.")
    + span(0, 1, "I want a full refund.", "Please send a replacement.",
           "I need a return label.", "I demand a refund or an exchange.")
    + span(2, 4, "Cancel my subscription and credit my account.")
    + span(3, 4, "Filing a chargeback with my bank.", "Disputing the charge rn.",
           "Gonna chargeback this, done.", "Unsubscribing and filing a dispute."),
    # Praise words.
    "pos": span(*ALL, "amazing", "awesome", "perfect")
    + span(0, 1, "excellent", "great", "fantastic", "superb", "outstanding")
    + span(2, 4, "elite", "fire")
    + span(3, 4, "goated", "lit", "unreal", "chef's kiss", "a total W"),
    # Question words.
    "task": span(*ALL, "reset the device", "pair it with my laptop",
                 "update the software", "turn off notifications")
    + span(0, 1, "replace the battery", "format the SD card",
           "install the firmware update", "track my shipment")
    + span(2, 4, "cancel my subscription", "turn off the AI assistant")
    + span(3, 4, "set up the eSIM", "move my plan to a new phone", "enable passkeys"),
}

# Class templates: (text, first period, last period).
TEMPLATES = {
    "complaint": span(*ALL,
        "My {product} is {neg}.",
        "The {feature} on my {product} {fail}.",
        "This is unacceptable, I am very disappointed with the {product}.",
        "I have contacted support {n} times and nobody has fixed the {feature} issue.",
        "Worst purchase I have made this year, the {feature} is {neg}.",
        "Not happy at all. The {product} {fail} after {days} days.",
        "Still waiting on a fix for the {feature}, this is getting ridiculous.",
        "I expected much better for ${price}. {demand}",
        "{product} {fail} again. {demand}",
        "Your {feature} is {neg} and support is even worse.",
    ) + span(0, 1,
        "The {product} arrived {neg} and the box was crushed.",
        "Shipping took {days} days and the {product} was damaged when it arrived.",
        "After the last firmware update my {product} is completely broken.",
        "I am sick of waiting for my refund.",
        "It is insane that a brand new {product} would fail like this.",
        "Your customer service is terrible and the {product} is faulty.",
        "The charger stopped working and the headphone jack is loose.",
    ) + span(0, 2,
        "The battery drains in a few hours, clearly a defective unit.",
    ) + span(2, 4,
        "The update bricked my {product}. {demand}",
        "Why do I need a subscription for features that used to be free? Hard pass.",
        "Battery life on the {product} is mid at best and the {feature} lags.",
        "Support ghosted me for {days} days. {demand}",
    ) + span(3, 4,
        "ngl the {product} is {neg}, the {feature} {fail}.",
        "{feature} is so mid, not worth the subscription.",
        "Paying for {plan} and the AI assistant keeps hallucinating, total ripoff.",
        "eSIM activation failed {n} times, I'm so done with this.",
        "the {product} is cooked after the latest patch, straight up trash",
    ) + span(4, 4,
        "It's giving scam. The {feature} randomly dies and nobody replies.",
    ),
    "praise": span(*ALL,
        "I love my new {product}, the {feature} works perfectly.",
        "Thank you for the quick help, really happy with the {product}.",
        "The {feature} on the {product} is {pos}.",
        "Really happy with this purchase, the {feature} is {pos}.",
        "Best {category} I have owned so far.",
        "My {product} has been {pos} for {n} weeks now, love it.",
        "Huge thanks to {agent} from support, solved everything in minutes.",
        "The {feature} is way better than on my old {category}.",
        "Honestly {pos}, the {product} exceeded my expectations.",
    ) + span(0, 1,
        "Excellent product, I would highly recommend the {product} to anyone.",
        "Fantastic build quality and the battery lasts all day.",
        "Fast shipping and the {product} arrived in perfect condition.",
        "Very impressed with the screen, colours look amazing.",
        "The firmware update made it noticeably faster, great job.",
        "Wonderful experience from ordering to setup.",
    ) + span(0, 2,
        "Five stars, great value for money.",
    ) + span(2, 4,
        "Worth every penny of the subscription.",
        "Smart Summaries are fire, can't go back.",
        "Elite battery life, went {n} days without charging.",
    ) + span(3, 4,
        "ngl the {product} slaps, the {feature} is {pos}.",
        "no cap this is the best {category} I've had.",
        "The {feature} is lowkey goated.",
        "The AI assistant actually saves me time every day, chef's kiss.",
        "eSIM setup took two minutes, absolute W.",
        "the {product} is lit fr",
        "Camera on the {product} is insane, shots look pro.",
        "this is sick, the {feature} just works",
    ),
    "question": span(*ALL,
        "How do I {task} on the {product}?",
        "Is it possible to {task}?",
        "Can I use the {product} with {accessory}?",
        "Does the {product} support {feature}?",
        "When will the {feature} be available in {country}?",
        "What is the difference between the {product} and the {product2}?",
        "Where can I find the settings for the {feature}?",
        "Is there a way to {task} without losing my data?",
        "Which {category} works best with {accessory}?",
    ) + span(0, 1,
        "Could you please tell me how to {task}?",
        "I would like to know if the {product} comes with a charger.",
        "Kindly advise whether the warranty covers {thing}.",
        "I wanted to ask whether the firmware can be downgraded.",
        "Please let me know which SD cards are compatible.",
        "Could you clarify the return policy for opened items?",
    ) + span(0, 2,
        "What is the expected shipping time to {country}?",
    ) + span(2, 4,
        "quick q: does {plan} include the {feature}?",
        "Curious whether {plan} can be shared with family.",
        "Any ETA on the {feature} for the {product}?",
    ) + span(3, 4,
        "anyone know how to {task}?",
        "lowkey confused, is the AI assistant on-device or cloud?",
        "wait so do I need a subscription for the {feature} or nah?",
        "is it just me or is there no setting for the {feature}?",
        "what's the move to {task} on the {product}?",
        "pls help, where do I turn off the {feature}",
    ) + span(4, 4,
        "how tf do I transfer my eSIM to the {product}",
        "real question: does the {product} work with passkeys?",
    ),
}

# Class-neutral fragments shared by all labels.
OPENERS = span(*ALL, "Hi,", "Hello,", "Hi team,") + span(0, 2, "Dear support,", "Good morning,") \
    + span(3, 4, "hey", "yo", "ok so")
CONTEXT = span(*ALL,
    "I bought the {product} {ago}.", "Order number {order}.", "I use it mostly for work.",
    "This is my second {category} from you.", "I got it as a gift.", "Using it with {accessory}.",
) + span(0, 2, "Running firmware {fw}.") + span(2, 4, "I'm on the {plan} plan.") \
    + span(3, 4, "tbh I've been using your stuff for years.", "for context I'm on the {product}.")
CLOSERS = span(*ALL, "Thanks.", "Thanks in advance.", "Regards, {agent}", "Sent from my {product}") \
    + span(0, 1, "Kind regards.", "Best wishes.") + span(3, 4, "thx", "ty", "lmk")
INTERJECTIONS = span(3, 4, "ngl", "tbh", "fr", "lowkey", "honestly")
OPENERS_TEXT = {text for text, _, _ in OPENERS}
INTERJECTIONS_TEXT = {text for text, _, _ in INTERJECTIONS}

# Per-period probability of a casual, all-lowercase ticket and of a slang interjection.
P_LOWERCASE = (0.02, 0.05, 0.12, 0.25, 0.35)
P_INTERJECTION = (0.0, 0.0, 0.0, 0.2, 0.3)
P_TYPO = 0.08
P_OTHER_CLASS = 0.10  # a secondary sentence taken from another class's templates


def active(items: list[tuple[str, int, int]], period: int) -> list[str]:
    return [text for text, first, last in items if first <= period <= last]


class Slots(dict):
    """Fills template placeholders lazily, one draw per name per sentence.

    The product and plan stay fixed for the whole ticket (see ``next_sentence``).
    """

    TICKET_WIDE = ("product", "plan")

    def __init__(self, rng: random.Random, period: int):
        super().__init__()
        self.rng, self.period = rng, period

    def next_sentence(self) -> None:
        for key in [k for k in self if k not in self.TICKET_WIDE]:
            del self[key]

    def __missing__(self, key: str) -> str:
        rng = self.rng
        if key == "n":
            value = str(rng.randint(2, 9))
        elif key == "days":
            value = str(rng.randint(3, 45))
        elif key == "price":
            value = str(rng.choice((199, 249, 399, 499, 799, 1099)))
        elif key == "order":
            value = f"{rng.randint(100000, 999999)}"
        elif key == "fw":
            value = f"{self.period + 2}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        elif key == "product2":
            others = [p for p in active(SLOTS["product"], self.period) if p != self["product"]]
            value = rng.choice(others)
        else:
            pool = active(SLOTS[key], self.period)
            if not pool:
                raise KeyError(f"slot {key!r} has no words in period {PERIODS[self.period]}")
            value = rng.choice(pool)
        self[key] = value
        return value


def add_typo(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w, j = words[i], rng.randrange(1, len(words[i]) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap two neighbouring letters
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif kind == 1:  # drop a letter
        w = w[:j] + w[j + 1:]
    else:  # double a letter
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def make_ticket(rng: random.Random, period: int, label: str) -> tuple[str, str]:
    """The ticket's text, and the product it names first ("" when it names none)."""
    slots = Slots(rng, period)
    own = active(TEMPLATES[label], period)
    body = rng.sample(own, 2 if rng.random() < 0.35 else 1)
    if rng.random() < P_OTHER_CLASS:
        other = rng.choice([c for c in LABELS if c != label])
        body.append(rng.choice(active(TEMPLATES[other], period)))
    parts = []
    if rng.random() < 0.35:
        parts.append(rng.choice(active(OPENERS, period)))
    if rng.random() < P_INTERJECTION[period]:
        parts.append(rng.choice(active(INTERJECTIONS, period)))
    parts.extend(body)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        parts.insert(rng.randint(len(parts) - len(body), len(parts)),
                     rng.choice(active(CONTEXT, period)))
    if rng.random() < 0.35:
        parts.append(rng.choice(active(CLOSERS, period)))
    sentences = []
    for i, part in enumerate(parts):
        slots.next_sentence()
        sentence = part.format_map(slots)
        if i < len(parts) - 1 and part not in (OPENERS_TEXT | INTERJECTIONS_TEXT) \
                and sentence[-1] not in ".?!,":
            sentence += "."
        sentences.append(sentence)
    text = " ".join(sentences)
    text = text[0].upper() + text[1:] if rng.random() > P_LOWERCASE[period] else text.lower()
    if rng.random() < P_TYPO:
        text = add_typo(rng, text)
    return text, slots.get("product", "")


def period_bounds(period: str) -> tuple[date, date]:
    """'2024-H1' -> (2024-01-01, 2024-06-30)."""
    year, half = int(period[:4]), period[5:]
    if half == "H1":
        return date(year, 1, 1), date(year, 6, 30)
    return date(year, 7, 1), date(year, 12, 31)


def generate(seed: int = DEFAULT_SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for index, period in enumerate(PERIODS):
        start, end = period_bounds(period)
        labels = [label for label in LABELS for _ in range(CLASS_COUNTS[period][label])]
        rng.shuffle(labels)
        batch = []
        for label in labels:
            text, product = make_ticket(rng, index, label)
            while not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                text, product = make_ticket(rng, index, label)
            day = start + timedelta(days=rng.randint(0, (end - start).days))
            batch.append({"date": day.isoformat(), "period": period, "text": text, "label": label,
                          "product": product})
        batch.sort(key=lambda row: row["date"])  # stable: ties keep generation order
        rows.extend(batch)
    for i, row in enumerate(rows, start=1):
        row["id"] = str(i)
    return rows


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    rows = generate(args.seed)
    write_csv(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
