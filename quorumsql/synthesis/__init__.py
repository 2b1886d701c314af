"""Training data and ICL pools synthesized from databases, query logs and existing pairs.

The per-seed work is the synthesis graph (:mod:`quorumsql.graph.synthesis`): seed -> SQL
variation -> execution filter -> question writing -> consistency judge -> chain of thought ->
difficulty -> record. Around it this package holds what a run needs and the graph does not:

* :mod:`~quorumsql.synthesis.records`: :class:`SynthRecord` (one pair with its provenance) and
  :class:`SynthOptions` (how much work per seed);
* :mod:`~quorumsql.synthesis.seeds`: seed SQL files, databases alone, existing pairs;
* :mod:`~quorumsql.synthesis.filters`: the read-only execution filter;
* :mod:`~quorumsql.synthesis.store`: the append-only ``records.jsonl`` of a run and ``--resume``;
* :mod:`~quorumsql.synthesis.batch`: near-duplicate removal, clustering and active selection over
  every record of a run;
* :mod:`~quorumsql.synthesis.export`: SFT chat, Alpaca and ICL-pool JSONL, ``summary.json``;
* :mod:`~quorumsql.synthesis.review`: the human-review CSV and the judge's calibration;
* :mod:`~quorumsql.synthesis.runner`: one run over a list of seeds (what ``quorumsql synth`` does).

Only the records and options are imported here; the other modules load on use.
"""

from quorumsql.synthesis.records import SynthOptions, SynthRecord

__all__ = ["SynthOptions", "SynthRecord"]
