"""A clock the tests move by hand: `clock()` is now, `clock.sleep(s)` advances it without waiting.
Passed where the code under test takes `clock=`/`sleep=` (ping retries, etcd member writes, the lock keeper)."""


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
