/* A work-sharing thread team for short parallel regions (batch-1 products: 10-200 us).
 *
 * Why not OpenMP: waking an OpenMP team costs tens of microseconds under OMP_WAIT_POLICY=PASSIVE,
 * and a team member that the OS descheduled stalls the whole region at its barrier (a 2-core VM
 * with one core busy: cnn-infer-b1 150 -> 406 us). Here:
 *
 * - n_threads - 1 pthread workers (none at all for one thread) spin on the ticket for
 *   DL_TEAM_SPIN_NS after their last chunk, then sleep on a condition variable.
 * - A job is (fn, arg, chunks). Chunks are claimed by CAS on one 64-bit ticket
 *   (generation << 32 | front << 16 | back: chunks [front, back) are unclaimed), so a worker that
 *   wakes late can never run a stale job: its CAS on an old generation fails. Before a job's
 *   fields change, the ticket moves to the new generation with nothing to claim (front = back),
 *   so nobody claims while they change.
 * - The caller claims from the front, workers from the back: on two threads the caller runs the
 *   first chunks and the worker the last ones at every call, so each core keeps its columns of a
 *   batch-1 product in its cache (with one-ended claims who ran which chunk changed from call to
 *   call). The MLP's (1, 784) @ (784, 512) GEMV on 2 threads, alternated in one process: 13.5-14.2
 *   against 14.4-14.9 us; the runner's four batch-1 predicts 1-7% faster. Jobs of more than
 *   DL_TEAM_MAX_CHUNKS chunks run on the caller alone.
 * - The caller claims chunks too, and at the end waits only for chunks that others claimed and
 *   are running, never for a worker that has not started: a descheduled worker costs at most one
 *   chunk, not the region.
 * - A second caller that finds the team busy (two Python threads predicting) runs its chunks
 *   alone, on its own thread, and for DL_TEAM_CALLERS_NS after that every caller does: the
 *   callers then have a core each, where one caller's workers would spin on the other's.
 * - After fork() the child has no workers (pthread_atfork resets the state); they start again
 *   at the next multi-threaded job, as after a change of the thread count (dl_team_resize).
 * - Load guard: sharing pays only while the workers get a core of their own. Each kind of job
 *   (fn and the caller's key, e.g. the product's size) keeps the mean wall time of its last
 *   jobs run shared and of its last jobs run by the caller alone; it runs the way that measured
 *   faster (alone only when sharing measured 25% slower: on a VM, host noise alone made 3% flip it), and a probe job the other way now and then (every 16 jobs,
 *   the interval doubling to 128 while probes confirm the choice), to notice when the host
 *   changes; before a shared probe the workers are woken a job ahead, so that it measures their
 *   help rather than their wake-up. Measured on a 2-core host whose cores other processes kept
 *   busy: the transformer's batch-1 predict at 2 threads took 1.7-5.3 ms with the workers always
 *   used, 1.5 ms with the team off (1 thread: 1.45 ms); a 128^3 product took 85 us shared
 *   against 43 us alone, with the workers running half of the chunks: two threads sharing one
 *   core's time. A wall-time comparison sees that; the threads' CPU times do not.
 *
 * Chunks write disjoint outputs and the chunking does not depend on who runs a chunk, so results
 * are the same whatever the thread count or the timing.
 *
 * The state is one struct per process: kernels/_team.pyx owns it and exports dl_team_run to the
 * other extensions (a static in this header would give every extension its own team). */
#ifndef DL_TEAM_H
#define DL_TEAM_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DL_TEAM_PAUSE() _mm_pause()
#else
#define DL_TEAM_PAUSE() ((void)0)
#endif

#define DL_TEAM_MAX_WORKERS 63
/* A job of more chunks runs on the caller alone (team jobs are at most TEAM_MAX_MACS: thousands
 * of chunks at most). */
#define DL_TEAM_MAX_CHUNKS 0xFFFFu
/* How long an idle worker spins before it sleeps, and how long a caller spins on others'
 * chunks before it yields its core (a worker descheduled on the caller's core needs it).
 * The spin covers the gaps between the jobs of one layer and the serial kernels between a
 * predict's parallel layers (tens of us): a worker that sleeps there is woken for the next
 * product at ~30 us. Under load the worker leaves its spin as soon as it sees it was descheduled
 * (DL_TEAM_PREEMPTED_NS) and the load guard stops handing it jobs, so a long spin costs little
 * there. Batch-1 predict medians, 2 threads, 2-core host, spin 10 us / 100 us / 200 us: idle,
 * MLP 23-30 / 25 / 25 us, CNN 73 / 55 / 55 us, transformer 1.23-1.39 / 1.17-1.22 / 1.10 ms; with
 * one busy process beside it: MLP 33.7 / 36.6 / 36.0, CNN 91 / 91 / 91, transformer 1.56-1.61 /
 * 1.42-1.47 / 1.44 ms (one thread: MLP 34, CNN 92, transformer 1.43-1.50 ms). */
#define DL_TEAM_SPIN_NS 200000L
#define DL_TEAM_YIELD_NS 50000L
/* After a caller found the team busy, every caller runs alone this long. Two Python threads
 * predicting the runner's models at batch 1, 2 kernel threads each, calls/s over one caller
 * (2-core host): MLP 0.83x, CNN 1.07x with the team taken by turns (a third thread on two cores:
 * the owner's spinning worker); MLP 1.06x, 1.30x, CNN 1.11x, 1.15x with this rule (ONNX Runtime
 * 0.83-0.97x, 0.89-0.91x). */
#define DL_TEAM_CALLERS_NS 2000000L
/* A gap this long between two looks at the clock of a spinning worker: it was descheduled. */
#define DL_TEAM_PREEMPTED_NS 100000L
/* The load guard: kinds of jobs remembered (a hash table), the first interval between probes
 * and its ceiling (in jobs of the kind). */
#define DL_TEAM_KINDS 64
#define DL_TEAM_PROBE_EVERY 16
#define DL_TEAM_PROBE_MAX 128
/* Before a shared probe, idle workers spin this long (woken a job of the kind ahead). The jobs
 * of one kind may be a whole predict apart (the transformer's: ~1 ms, 14 kinds), so a 200 us
 * spin had the workers asleep again at every probe: the probes measured their wake-up, kept
 * every kind alone and doubled their interval to 512 jobs (half a second of one thread). */
#define DL_TEAM_PROBE_SPIN_NS 3000000L

#define DL_TEAM_LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define DL_TEAM_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

typedef void (*dl_team_fn)(void *arg, ptrdiff_t chunk);
/* A job's serial form (every chunk in one call, e.g. one GEMV over all columns: wider tiles than
 * a chunk's), run when the load guard runs the job alone; NULL: the chunks one by one. */
typedef void (*dl_team_whole_fn)(void *arg);

/* The load guard's record of one kind of job: mean wall times (0: not measured yet). */
typedef struct {
    dl_team_fn fn;
    uint64_t key;
    int64_t shared_ns, solo_ns;
    uint32_t jobs, next_probe, probe_every;
    int prefer_solo, probing, probe_deferred;
} dl_team_kind;

typedef struct {
    uint64_t ticket;        /* generation << 32 | front << 16 | back (unclaimed: [front, back)) */
    dl_team_fn fn;          /* the current job */
    void *arg;
    uint32_t chunks;
    uint32_t done;          /* chunks of the current job finished by workers */
    int busy;               /* a caller owns the team */
    int stop;               /* workers exit */
    int n_workers;          /* workers running */
    int sleepers;           /* workers waiting on cv */
    uint32_t wake_seq;      /* bumped (under mu) to wake the sleepers */
    uint64_t jobs_shared;   /* jobs run with the workers (tests, measurements) */
    uint64_t chunks_by_workers;
    uint64_t late_worker_ns; /* tests: a worker sleeps this long after claiming its first chunk */
    int workers_from_front; /* measurements: workers claim from the front too (one-ended claims) */
    int64_t spin_ns;        /* how long an idle worker spins (DL_TEAM_SPIN_NS) */
    int guard;              /* the load guard is on (tests turn it off) */
    int64_t spin_until_ns;  /* idle workers spin at least until then (a probe is coming) */
    uint64_t jobs_solo;     /* jobs the guard ran alone (tests, measurements) */
    int64_t callers_met_ns; /* until then every caller runs alone (another found the team busy) */
    dl_team_kind kinds[DL_TEAM_KINDS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[DL_TEAM_MAX_WORKERS];
} dl_team;

static int64_t dl_team_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claim and run one chunk of the current job, the caller from the front, a worker from the
 * back; 1 if one ran, 0 if none is left. */
static int dl_team_claim(dl_team *t, int by_worker)
{
    for (;;) {
        uint64_t tk = DL_TEAM_LOAD(&t->ticket), next;
        uint32_t front = (uint32_t)(tk >> 16) & DL_TEAM_MAX_CHUNKS, back = (uint32_t)tk & DL_TEAM_MAX_CHUNKS, c;
        dl_team_fn fn = DL_TEAM_LOAD(&t->fn);
        void *arg = DL_TEAM_LOAD(&t->arg);
        if (front >= back)
            return 0;
        if (by_worker && !DL_TEAM_LOAD(&t->workers_from_front)) {
            c = back - 1;
            next = tk - 1;
        } else {
            c = front;
            next = tk + ((uint64_t)1 << 16);
        }
        /* success means the ticket still held this generation, so fn and arg were its own */
        if (__atomic_compare_exchange_n(&t->ticket, &tk, next, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            if (by_worker) {
                uint64_t late = DL_TEAM_LOAD(&t->late_worker_ns);
                if (late) {
                    struct timespec ts = {(time_t)(late / 1000000000u), (long)(late % 1000000000u)};
                    nanosleep(&ts, NULL);
                }
            }
            fn(arg, (ptrdiff_t)c);
            if (by_worker) {
                __atomic_fetch_add(&t->chunks_by_workers, 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&t->done, 1, __ATOMIC_SEQ_CST);
            }
            return 1;
        }
    }
}

static int dl_team_has_work(dl_team *t)
{
    uint64_t tk = DL_TEAM_LOAD(&t->ticket);
    return ((uint32_t)(tk >> 16) & DL_TEAM_MAX_CHUNKS) < ((uint32_t)tk & DL_TEAM_MAX_CHUNKS);
}

static void *dl_team_worker(void *p)
{
    dl_team *t = (dl_team *)p;
    for (;;) {
        int64_t spin = DL_TEAM_LOAD(&t->spin_ns);
        int64_t last = dl_team_now_ns(), deadline = last + spin, now;
        unsigned spins = 0;
        for (;;) {  /* spin: run whatever chunks appear until spin_ns of nothing */
            if (DL_TEAM_LOAD(&t->stop))
                return NULL;
            if (dl_team_claim(t, 1)) {
                last = dl_team_now_ns();
                deadline = last + spin;
                continue;
            }
            DL_TEAM_PAUSE();
            if ((++spins & 63) == 0) {
                now = dl_team_now_ns();
                /* past the deadline, or descheduled while spinning (the core is contended:
                 * spinning on takes it from the caller and the other processes) */
                if ((now > deadline && now > DL_TEAM_LOAD(&t->spin_until_ns))
                    || now - last > DL_TEAM_PREEMPTED_NS)
                    break;
                last = now;
                /* let a thread waiting for this core run: an OpenMP region right after a team
                 * job woke its worker onto a core this spin held (the batch-16 CNN's Winograd
                 * convolution after its first layer's team job, 2 threads: 488-534 us against
                 * 405-441 with the workers asleep; yielding here: 386-418; the cost to a job of
                 * the team, ~0.2 us) */
                sched_yield();
            }
        }
        pthread_mutex_lock(&t->mu);
        {
            uint32_t seq = t->wake_seq;
            __atomic_fetch_add(&t->sleepers, 1, __ATOMIC_SEQ_CST);
            /* a job published before the increment is seen here; one after it sees sleepers */
            while (!dl_team_has_work(t) && !DL_TEAM_LOAD(&t->stop) && DL_TEAM_LOAD(&t->wake_seq) == seq)
                pthread_cond_wait(&t->cv, &t->mu);
            __atomic_fetch_sub(&t->sleepers, 1, __ATOMIC_SEQ_CST);
        }
        pthread_mutex_unlock(&t->mu);
    }
}

static void dl_team_wake(dl_team *t)
{
    pthread_mutex_lock(&t->mu);
    DL_TEAM_STORE(&t->wake_seq, t->wake_seq + 1);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void dl_team_init(dl_team *t)
{
    memset(t, 0, sizeof(*t));
    t->ticket = 0;  /* generation 0, nothing to claim */
    t->guard = 1;
    t->spin_ns = DL_TEAM_SPIN_NS;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

/* Stop and join the workers; the caller owns busy. */
static void dl_team_stop_workers(dl_team *t)
{
    int i;
    if (t->n_workers == 0)
        return;
    DL_TEAM_STORE(&t->stop, 1);
    dl_team_wake(t);
    for (i = 0; i < t->n_workers; i++)
        pthread_join(t->threads[i], NULL);
    t->n_workers = 0;
    DL_TEAM_STORE(&t->stop, 0);
}

/* Run with n_threads - 1 workers (0 for one thread); the caller owns busy. Returns the workers
 * running (fewer where pthread_create failed). */
static int dl_team_set_workers(dl_team *t, int n_threads)
{
    int want = n_threads - 1;
    if (want < 0) want = 0;
    if (want > DL_TEAM_MAX_WORKERS) want = DL_TEAM_MAX_WORKERS;
    if (t->n_workers == want)
        return want;
    dl_team_stop_workers(t);
    while (t->n_workers < want) {
        if (pthread_create(&t->threads[t->n_workers], NULL, dl_team_worker, t) != 0)
            break;
        t->n_workers++;
    }
    return t->n_workers;
}

static int dl_team_try_own(dl_team *t)
{
    int expected = 0;
    return __atomic_compare_exchange_n(&t->busy, &expected, 1, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

static void dl_team_release(dl_team *t)
{
    DL_TEAM_STORE(&t->busy, 0);
}

static void dl_team_guard_reset(dl_team *t)
{
    memset(t->kinds, 0, sizeof(t->kinds));
}

/* Change the worker count to n_threads - 1 (waits for a running job to end); the load guard
 * starts afresh. */
static int dl_team_resize(dl_team *t, int n_threads)
{
    int n;
    while (!dl_team_try_own(t))
        sched_yield();
    dl_team_guard_reset(t);
    n = dl_team_set_workers(t, n_threads);
    dl_team_release(t);
    return n;
}

/* Run fn(arg, c) for c in [0, chunks) on up to n_threads threads (the caller included), or
 * whole(arg) on the caller alone when the load guard chooses that (key: see dl_team_kind_of).
 * Returns the number of threads that could take part (1: the caller ran every chunk). */
/* The kind of job (fn, key), reset when its slot held another. */
static dl_team_kind *dl_team_kind_of(dl_team *t, dl_team_fn fn, uint64_t key)
{
    uint64_t h = (uint64_t)(uintptr_t)fn ^ (key * 0x9E3779B97F4A7C15ull);
    dl_team_kind *k;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;  /* splitmix64's finalizer */
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    k = &t->kinds[(h ^ (h >> 31)) % DL_TEAM_KINDS];
    if (k->fn != fn || k->key != key) {
        memset(k, 0, sizeof(*k));
        k->fn = fn;
        k->key = key;
    }
    return k;
}

/* Whether the guard runs this job of kind k on the caller alone: the way measured faster, but
 * the other way at the kind's next probe. Probes come every DL_TEAM_PROBE_EVERY jobs, their
 * interval doubling (up to DL_TEAM_PROBE_MAX) while they confirm the choice. */
static int dl_team_go_solo(dl_team_kind *k)
{
    int prefer_solo;
    k->probing = 0;
    if (k->shared_ns == 0 || k->jobs < 2)  /* the first job warms the workers */
        return 0;
    if (k->solo_ns == 0)
        return 1;
    prefer_solo = k->shared_ns * 100 >= k->solo_ns * 125;
    if (k->probe_every == 0 || prefer_solo != k->prefer_solo) {  /* a new choice: probe soon */
        k->probe_every = DL_TEAM_PROBE_EVERY;
        k->next_probe = k->jobs + DL_TEAM_PROBE_EVERY;
        k->prefer_solo = prefer_solo;
    }
    if (k->jobs < k->next_probe)
        return prefer_solo;
    if (k->probe_every < DL_TEAM_PROBE_MAX)
        k->probe_every *= 2;
    k->next_probe = k->jobs + k->probe_every;
    k->probing = 1;
    return !prefer_solo;
}

/* A mean over the last ~4 samples; one sample counts at most 2x the mean (a time slice lost to
 * another process must not decide alone). */
static void dl_team_mean(int64_t *mean, int64_t x)
{
    if (*mean == 0) {
        *mean = x > 0 ? x : 1;
        return;
    }
    if (x > 2 * *mean)
        x = 2 * *mean;
    *mean += (x - *mean) / 4;
    if (*mean <= 0)
        *mean = 1;
}

/* A job's wall time into its mode's mean; a probe's replaces it (the mean of a mode not run for
 * a while is stale: one fast probe may switch the kind back, and if it was a fluke the regular
 * jobs' times switch it again). */
static void dl_team_record(dl_team_kind *k, int64_t *mean, int64_t x)
{
    if (k->probing)
        *mean = x > 0 ? x : 1;
    else
        dl_team_mean(mean, x);
}

/* The job on the caller alone: whole(arg) where the kernel has a serial form, else the chunks. */
static void dl_team_alone(dl_team_fn fn, void *arg, ptrdiff_t chunks, dl_team_whole_fn whole)
{
    ptrdiff_t c;
    if (whole != NULL) {
        whole(arg);
        return;
    }
    for (c = 0; c < chunks; c++)
        fn(arg, c);
}

static int dl_team_run(dl_team *t, dl_team_fn fn, void *arg, ptrdiff_t chunks, int n_threads,
                       uint64_t key, dl_team_whole_fn whole)
{
    uint32_t mine = 0, gen;
    int64_t since, start;
    unsigned spins = 0;
    int woke;
    dl_team_kind *kind = NULL;
    if (n_threads <= 1 || chunks <= 1 || chunks > (ptrdiff_t)DL_TEAM_MAX_CHUNKS) {
        dl_team_alone(fn, arg, chunks, whole);
        return 1;
    }
    if (!dl_team_try_own(t)) {  /* another caller holds the team */
        DL_TEAM_STORE(&t->callers_met_ns, dl_team_now_ns() + DL_TEAM_CALLERS_NS);
        dl_team_alone(fn, arg, chunks, whole);
        return 1;
    }
    start = dl_team_now_ns();
    if (start < DL_TEAM_LOAD(&t->callers_met_ns)) {  /* it holds it alone, as the others do */
        dl_team_alone(fn, arg, chunks, whole);
        dl_team_release(t);
        return 1;
    }
    if (t->guard) {
        kind = dl_team_kind_of(t, fn, key);
        kind->jobs++;
        if (dl_team_go_solo(kind)) {  /* alone measured faster (or is being measured) */
            if (kind->jobs + 1 == kind->next_probe && t->n_workers > 0) {
                /* the next job of this kind is a shared probe: have the workers awake and
                 * spinning by then, or the probe would measure their wake-up, not their help */
                DL_TEAM_STORE(&t->spin_until_ns, start + DL_TEAM_PROBE_SPIN_NS);
                if (DL_TEAM_LOAD(&t->sleepers) > 0)
                    dl_team_wake(t);
            }
            dl_team_alone(fn, arg, chunks, whole);
            dl_team_record(kind, &kind->solo_ns, dl_team_now_ns() - start);
            t->jobs_solo++;
            dl_team_release(t);
            return 1;
        }
    }
    if (dl_team_set_workers(t, n_threads) == 0) {
        dl_team_release(t);
        dl_team_alone(fn, arg, chunks, whole);
        return 1;
    }
    gen = (uint32_t)(DL_TEAM_LOAD(&t->ticket) >> 32) + 1;
    DL_TEAM_STORE(&t->ticket, (uint64_t)gen << 32);
    DL_TEAM_STORE(&t->fn, fn);
    DL_TEAM_STORE(&t->arg, arg);
    DL_TEAM_STORE(&t->chunks, (uint32_t)chunks);
    DL_TEAM_STORE(&t->done, 0);
    DL_TEAM_STORE(&t->ticket, ((uint64_t)gen << 32) | (uint64_t)chunks);
    woke = DL_TEAM_LOAD(&t->sleepers) > 0;
    if (woke) {
        /* the spinning workers start at once; the caller's first chunk comes before the wake-up
         * call (a futex syscall), which a sleeping worker needs tens of us to answer anyway */
        if (dl_team_claim(t, 0))
            mine++;
        dl_team_wake(t);
    }
    while (dl_team_claim(t, 0))
        mine++;
    /* every chunk is claimed: wait for those that others are running */
    since = dl_team_now_ns();
    while (DL_TEAM_LOAD(&t->done) != (uint32_t)chunks - mine) {
        DL_TEAM_PAUSE();
        if ((++spins & 255) == 0 && dl_team_now_ns() - since > DL_TEAM_YIELD_NS)
            sched_yield();
    }
    if (kind != NULL) {
        if (kind->jobs < 2) {
            /* the first job starts the workers: its time says nothing of their help */
        } else if (woke && kind->probing && !kind->probe_deferred) {
            /* a probe that had to wake a worker measured its wake-up (the OS may even run it on
             * the caller's core first): probe again at the next job, the worker now spinning */
            kind->probe_deferred = 1;
            kind->next_probe = kind->jobs + 1;
        } else {
            kind->probe_deferred = 0;
            dl_team_record(kind, &kind->shared_ns, dl_team_now_ns() - start);
        }
    }
    t->jobs_shared++;
    dl_team_release(t);
    return t->n_workers + 1;
}

/* In the child of fork(): the workers do not exist there. */
static void dl_team_after_fork_child(dl_team *t)
{
    t->n_workers = 0;
    t->busy = 0;
    t->stop = 0;
    t->sleepers = 0;
    dl_team_guard_reset(t);
    t->ticket = (t->ticket >> 32) << 32;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

#endif
