"""demo.progress: the line a running stage shows is the log's latest status, on one line."""
from demo import progress


def test_a_stage_shows_its_log_s_last_status_line_clipped_and_not_native_logs(tmp_path):
  log = tmp_path / "stage.log"
  huge = "WARNING: found untraced functions such as " + ", ".join(
      f"map_while_input_{i}" for i in range(900))
  log.write_text("epoch 1/5 done\n" + huge + "\n"
                 "I0000 00:00:1796661840.186414   14161 cudart_stub.cc:31] no GPU\n")
  stage = progress.Stage(5, 10, "export", str(log))
  text = stage.text()
  assert text.startswith("[5/10] export")
  assert "map_while_input_" in text and "cudart" not in text       # the status, not TF's log
  assert text.endswith("…")
  assert len(text) <= len("[5/10] export") + len("  00000 s  ") + progress.DETAIL_CHARS


def test_a_short_status_line_is_shown_whole(tmp_path):
  log = tmp_path / "stage.log"
  log.write_text("epoch 3/5 done, loss 0.02\r\n")
  assert progress.Stage(3, 10, "training", str(log)).text().endswith("epoch 3/5 done, loss 0.02")
