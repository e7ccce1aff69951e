"""runtime/accesslog.py ``printable``'s shortcut (``str.isprintable``) gives what the escaping gives."""

from runtime.accesslog import LOGGED_CHARS, UNSAFE, printable
from runtime.guard import MAX_JSON_VALUES, json_values


def _escaped(value: str) -> str:  # the function without its shortcut
    cut = value[:LOGGED_CHARS] + ("..." if len(value) > LOGGED_CHARS else "")
    return UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", cut)


def test_every_character_of_the_first_planes_and_lengths_around_the_cut():
    for code in range(0x3100):
        for value in (chr(code), f"id-{chr(code)}-x"):
            assert printable(value) == _escaped(value), hex(code)
    for length in (LOGGED_CHARS - 1, LOGGED_CHARS, LOGGED_CHARS + 1):
        assert printable("a" * length) == _escaped("a" * length)
    assert printable("a\nb") == "a\\x0ab" and printable("\u2028") == "\\x2028"


def test_json_values_short_bodies_are_bounded_by_their_length_long_ones_are_counted():
    assert json_values(b'{"instances":["a,b"]}') <= MAX_JSON_VALUES
    many = b"[" + b"0," * (MAX_JSON_VALUES + 1) + b"0]"
    assert json_values(many) > MAX_JSON_VALUES
