"""The same-run comparison for `sluice-bench queue --backlog` (issue 21): a
RabbitMQ quorum queue holding the same backlog. Fills N messages of SIZE
bytes (unconfirmed, from P publisher processes, then waits up to 30 s for
the queue to count them), samples beam.smp's memory from /proc, and drains
with C consumer processes (prefetch 1000, one multiple ack per 100). Python
and pika bound the client side; compare memory first, rates with care.

    /usr/bin/python3 bench.py 1500000 1024   # RabbitMQ on 127.0.0.1:5672, guest
"""
import json, multiprocessing as mp, os, sys, threading, time
import pika

N = int(sys.argv[1]); SIZE = int(sys.argv[2]); P = 2; C = 2
PARAMS = pika.ConnectionParameters('127.0.0.1', 5672, credentials=pika.PlainCredentials('guest', 'guest'))
Q = 'deep'

def beam_pid():
    return int(os.popen('pgrep -f beam.smp').read().split()[0])

def mem(pid):
    out = {}
    for line in open(f'/proc/{pid}/status'):
        k, v = line.split(':', 1)
        if k in ('VmRSS', 'RssAnon'):
            out[k] = int(v.split()[0]) * 1024
    return out

def publisher(start, count):
    conn = pika.BlockingConnection(PARAMS); ch = conn.channel()
    body = b'x' * SIZE
    for i in range(start, start + count):
        ch.basic_publish('', Q, body, pika.BasicProperties(delivery_mode=2))
    conn.close()

def consumer(total, done):
    conn = pika.BlockingConnection(PARAMS); ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    n = 0
    for method, props, body in ch.consume(Q, inactivity_timeout=3):
        if method is None:
            break
        n += 1
        if n % 100 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)
    ch.cancel(); conn.close()
    done.put(n)

def depth():
    conn = pika.BlockingConnection(PARAMS); ch = conn.channel()
    d = ch.queue_declare(Q, durable=True, passive=True).method.message_count
    conn.close(); return d

if __name__ == '__main__':
    pid = beam_pid()
    conn = pika.BlockingConnection(PARAMS); ch = conn.channel()
    ch.queue_delete(Q)
    ch.queue_declare(Q, durable=True, arguments={'x-queue-type': 'quorum'})
    conn.close()
    samples = {'idle': mem(pid)}
    peaks = {}
    phase = ['fill']; stop = [False]
    def watch():
        while not stop[0]:
            m = mem(pid); p = peaks.setdefault(phase[0], {'VmRSS': 0, 'RssAnon': 0})
            for k in m: p[k] = max(p[k], m[k])
            time.sleep(0.25)
    threading.Thread(target=watch, daemon=True).start()
    t0 = time.time()
    procs = [mp.Process(target=publisher, args=(i * (N // P), N // P)) for i in range(P)]
    [p.start() for p in procs]; [p.join() for p in procs]
    waited = time.time()
    while depth() < N and time.time() - waited < 30: time.sleep(0.5)
    fill_s = time.time() - t0
    held_depth = depth()
    samples['held'] = mem(pid)
    phase[0] = 'drain'
    done = mp.Queue(); t1 = time.time()
    procs = [mp.Process(target=consumer, args=(N, done)) for _ in range(C)]
    [p.start() for p in procs]
    got = sum(done.get() for _ in procs); [p.join() for p in procs]
    drain_s = time.time() - t1 - 3  # the consumers' 3 s inactivity timeout
    samples['drained'] = mem(pid); stop[0] = True
    mb = lambda b: round(b / 1e6, 1)
    print(json.dumps({'messages': N, 'held_depth': held_depth, 'size': SIZE, 'fill_s': round(fill_s, 1), 'fill_msgs_per_s': round(N / fill_s),
        'drain_s': round(drain_s, 1), 'drain_msgs_per_s': round(got / drain_s), 'received': got, 'left': depth(),
        'memory_mb': {k: {kk: mb(vv) for kk, vv in v.items()} for k, v in samples.items()},
        'peaks_mb': {k: {kk: mb(vv) for kk, vv in v.items()} for k, v in peaks.items()},
        'anon_bytes_per_held_message': round((samples['held']['RssAnon'] - samples['idle']['RssAnon']) / max(held_depth, 1), 1)}))
