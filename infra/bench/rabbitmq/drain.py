"""Drains the quorum queue `deep` that bench.py filled, measuring only the
drain (for a fill whose count never reached N: unconfirmed publishes may be
dropped). Same arguments as bench.py.

    /usr/bin/python3 drain.py 1500000 1024
"""
import json, multiprocessing as mp, os, threading, time, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench

if __name__ == '__main__':
    pid = bench.beam_pid()
    held = bench.mem(pid); held_depth = bench.depth()
    peak = {'VmRSS': 0, 'RssAnon': 0}; stop = [False]
    def watch():
        while not stop[0]:
            m = bench.mem(pid)
            for k in m: peak[k] = max(peak[k], m[k])
            time.sleep(0.25)
    threading.Thread(target=watch, daemon=True).start()
    done = mp.Queue(); t1 = time.time()
    procs = [mp.Process(target=bench.consumer, args=(0, done)) for _ in range(2)]
    [p.start() for p in procs]
    got = sum(done.get() for _ in procs); [p.join() for p in procs]
    drain_s = time.time() - t1 - 3
    stop[0] = True
    mb = lambda b: round(b / 1e6, 1)
    print(json.dumps({'held_depth': held_depth, 'held_mb': {k: mb(v) for k, v in held.items()},
        'drain_s': round(drain_s, 1), 'drain_msgs_per_s': round(got / drain_s), 'received': got,
        'left': bench.depth(), 'drain_peak_mb': {k: mb(v) for k, v in peak.items()},
        'drained_mb': {k: mb(v) for k, v in bench.mem(pid).items()}}))
