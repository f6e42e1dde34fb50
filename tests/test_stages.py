"""Stage lines in the prover-program protocol: a request's progress_path receives one line per
stage the program reports while it answers; without one, nothing is written; a progress_path
that is not a string is a bad request."""

from __future__ import annotations

import json

from pot_zk.core import protocol
from pot_zk.core.prover_program import answer
from pot_zk.core.stages import read_stages, stage


def request(**extra) -> str:
    return json.dumps({"protocol": protocol.PROTOCOL, "kind": "sgd", "step": 3, "circuit": {"kind": "sgd"}, "witness_path": "w",
                       "cache_dir": "c", "output_dir": "o", **extra})


def prove(_: dict) -> protocol.ProverResponse:
    for name in ("witness", "keys", "prove", "verify"):
        stage(name)
    return protocol.ProverResponse(proof_type="zk-test", artifacts={})


def test_the_stages_a_program_reports_go_to_the_requests_progress_path_only(tmp_path):
    path = tmp_path / "stages.jsonl"
    code, _ = answer(request(progress_path=str(path)), ("sgd",), prove)
    assert code == protocol.EXIT_OK
    lines = read_stages(path)
    assert [line.stage for line in lines] == ["witness", "keys", "prove", "verify"]
    assert [line.shown for line in lines] == ["witness", "key setup or load", "prove", "verify"]
    assert lines == sorted(lines, key=lambda line: line.at)

    code, _ = answer(request(), ("sgd",), prove)
    stage("prove")  # outside a request: nowhere
    assert code == protocol.EXIT_OK and list(tmp_path.iterdir()) == [path] and len(read_stages(path)) == 4


def test_a_progress_path_that_is_not_a_string_is_a_bad_request(tmp_path):
    code, document = answer(request(progress_path=7), ("sgd",), prove)
    assert code == protocol.EXIT_BAD_REQUEST and document["message"] == "progress_path must be a string"


def test_a_request_names_a_progress_path_only_when_someone_watches():
    bare = protocol.ProverRequest(3, "sgd", {}, "w", "c", "o")
    assert "progress_path" not in bare.to_json_dict()
    assert protocol.ProverRequest(3, "sgd", {}, "w", "c", "o", progress_path="/p").to_json_dict()["progress_path"] == "/p"
