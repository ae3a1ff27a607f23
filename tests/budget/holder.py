"""A worker-like process for the budget tests: ``threads`` threads each take the budget
``rounds`` times, hold it ``hold`` seconds, and print when they held it (epoch seconds), so the
test can count how many held it at once across every process.

Run as ``python -m tests.budget.holder KEY CONCURRENCY THREADS ROUNDS HOLD``; the store is the one
the environment's broker chooses (Redis or the database in DATABASE_URL).
"""

import json
import sys
import threading
import time

import django


def main(key, concurrency, threads, rounds, hold):
    django.setup()
    from mailboxes.budget import Budget, Limits

    budget = Budget(key, Limits(concurrency=int(concurrency)))
    held, lock = [], threading.Lock()

    def take_turns():
        for _ in range(int(rounds)):
            with budget.request():
                start = time.time()
                time.sleep(float(hold))
                end = time.time()
            with lock:
                held.append((start, end))

    workers = [threading.Thread(target=take_turns) for _ in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps(held))


if __name__ == "__main__":
    main(*sys.argv[1:])
