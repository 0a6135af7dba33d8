import io

from airss_msc.search.progress import Progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_batch_log_gets_periodic_status_lines_with_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    p = Progress(10, stream=out, every=60.0, clock=clock)
    for k in range(4):
        clock.t += 30.0  # one candidate every 30 s
        p.advance(relaxed=k != 1)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("status:")]
    assert len(lines) == 2  # at 60 s and 120 s
    assert "4/10 done, 1 not relaxed, 2.00/min, about 3m00s left" in lines[-1]


def test_terminal_gets_a_bar_redrawn_in_place():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out, clock = Tty(), Clock()
    p = Progress(4, stream=out, clock=clock)
    clock.t = 10.0
    p.line("result 1")
    p.advance(relaxed=True)
    p.close()
    text = out.getvalue()
    assert "\r\033[K" in text and "[######------------------] 1/4 done" in text
    assert "result 1\n" in text
