"""Slot filling metrics (superb.downstream.metrics.slots): slot-type F1 and slot-value CER by hand,
the CER against jiwer's over the aligned value pairs."""
import jiwer
import pytest

from superb.downstream.metrics.slots import (parse_slots, remove_slot_tokens, slot_type_f1, slot_value_cer,
                                             slot_value_pairs)


def test_slot_metrics_by_hand_and_against_jiwer():
    ref = "PLAY B-artist JOHN LEGEND E-artist ON B-service SPOTIFY E-service"
    # both slot types found, one value misspelt (LEGEND -> LEGENT: 1 edit)
    hyp = "PLAY B-artist JOHN LEGENT E-artist ON B-service SPOTIFY E-service"
    assert slot_type_f1([ref], [hyp]) == 1.0
    assert slot_value_cer([ref], [hyp]) == pytest.approx(1 / (len("JOHN LEGEND") + len("SPOTIFY")))
    # hypothesis finds only artist and invents city: P = 1/2, R = 1/2
    hyp2 = "PLAY B-artist JOHN LEGEND E-artist ON B-city SPOTIFY E-city"
    assert slot_type_f1([ref], [hyp2]) == pytest.approx(0.5)
    assert slot_value_pairs([ref], [hyp2]) == [("JOHN LEGEND", "JOHN LEGEND"), ("SPOTIFY", "")]
    # no slots anywhere -> 1; slots only on one side -> 0; averaged over utterances
    assert slot_type_f1(["HELLO", ref, "HI"], ["HELLO", "PLAY", "B-city X E-city"]) == pytest.approx(1 / 3)
    # the closest hypothesis value of the type is used; nested tags are cleaned from hypothesis values
    ref3 = "B-city PARIS E-city AND B-city ROME E-city"
    hyp3 = "B-city ROMA E-city B-city B-x PARIS E-x E-city"
    assert parse_slots(hyp3, clean_values=True) == {"city": ["ROMA", "PARIS"]}
    assert slot_value_pairs([ref3], [hyp3]) == [("PARIS", "PARIS"), ("ROME", "ROMA")]
    # corpus-level CER equals jiwer's over the aligned value pairs
    refs = [ref, ref3, "B-genre JAZZ E-genre"]
    hyps = [hyp2, hyp3, "nothing"]
    pairs = slot_value_pairs(refs, hyps)
    expect = jiwer.cer([r for r, _ in pairs], [h for _, h in pairs])
    assert slot_value_cer(refs, hyps) == pytest.approx(expect)
    assert slot_value_cer(refs, hyps) == pytest.approx((0 + len("SPOTIFY") + 0 + 1 + len("JAZZ"))
                                                       / len("JOHN LEGENDSPOTIFYPARISROMEJAZZ"))
    assert slot_value_cer(["NO SLOTS"], ["B-x Y E-x"]) == 0.0  # no reference slot: nothing to score


def test_slot_tokens_removed_and_parsed():
    assert remove_slot_tokens("PLAY B-artist JOHN  LEGEND E-artist NOW") == "PLAY JOHN LEGEND NOW"
    assert parse_slots("B-a X  Y E-a B-b Z E-b B-a W E-a") == {"a": ["X Y", "W"], "b": ["Z"]}
    assert parse_slots("B-a X E-b") == {}  # the closing tag must match the type
