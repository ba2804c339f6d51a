"""Writes the pickle seeds CPython itself makes: one value of every common kind, pickled
with every protocol from 0 to the highest, for both pickle targets (codec_pickle and
pickle_value). Run: python3 fuzz/seeds/make_pickles.py"""
import collections
import os
import pickle

SEEDS = os.path.dirname(os.path.abspath(__file__))
TARGETS = ["codec_pickle", "pickle_value"]
VALUES = {
    "scalars": (None, True, False, 0, -1, 2**40, 2**70, 1.5, float("inf"), "é", b"\x00\xff"),
    "containers": [[1, 2], {"a": (3, 4)}, {5, 6}, frozenset({7}), bytearray(b"xy"), ()],
    "shared": (lambda x: [x, x, {"again": x}])([1, "two"]),
    "numbers": (1, 2.0, -3, 10**30),
    "tuple": (42, "text", [1.0, -0.0], True),
    "ordered": collections.OrderedDict([("k", 1)]),
}

for target in TARGETS:
    here = os.path.join(SEEDS, target)
    os.makedirs(here, exist_ok=True)
    for name, value in VALUES.items():
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            with open(os.path.join(here, f"cpython-{name}-p{proto}"), "wb") as f:
                f.write(pickle.dumps(value, protocol=proto))
