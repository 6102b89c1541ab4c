/*
 * churn.c - single-threaded object churn with a realistic small-size mix,
 * in the spirit of the cfrac and espresso workloads; written from scratch
 * for hakmem.
 *
 *   churn [steps [seed]]
 *         defaults: 4000000 42
 *
 * Three kinds of objects, interleaved in every step the way a symbolic or
 * number-crunching program interleaves them:
 *   - "big numbers" (cfrac): arrays of 32-bit limbs, 12..256 bytes.  A pool
 *     of POOL live numbers; each step adds two of them into a new number
 *     that replaces a random pool entry, and builds and drops a temporary
 *     (a scaled copy), so most numbers die young and a few live long.
 *   - a linked list of "terms" (espresso's cube lists), 24..64 bytes each,
 *     grown by one node per step and torn down whole when it reaches a
 *     random length of 4..256 nodes.
 *   - a chained hash set of 24..120-byte nodes with random keys; when it
 *     holds more than HASH_LIMIT nodes, a random bucket is emptied, so node
 *     lifetimes are random and the heap stays at a steady, fragmented size.
 * Nothing here is large or shared between threads: this is the tiny-block
 * fast path plus the cost of keeping many partly used slabs in rotation.
 *
 * Every object carries a checksum of its contents that is verified before
 * it is freed.  ops = malloc calls.  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define POOL 2048
#define MAX_LIMBS 62 /* 8 + 4 * 62 = 256 bytes */
#define HASH_BUCKETS 1024
#define HASH_LIMIT 4096

struct num {
    uint32_t len;
    uint32_t sum; /* num_sum() of the limbs */
    uint32_t limb[];
};

struct term {
    struct term *next;
    uint32_t seq;
    uint32_t check; /* term_check(seq, payload length) */
    uint32_t plen;
    unsigned char payload[]; /* plen bytes, each (seq + i) */
};

struct hnode {
    struct hnode *next;
    uint64_t key;
    uint64_t check; /* ~mix(key) */
    uint64_t pad[];
};

static uint64_t mallocs;

static void *churn_alloc(size_t n)
{
    mallocs++;
    return bench_malloc(n);
}

static uint32_t num_sum(const struct num *x)
{
    uint32_t s = x->len * 2654435761u;
    for (uint32_t i = 0; i < x->len; i++)
        s = (s ^ x->limb[i]) * 16777619u;
    return s;
}

static struct num *num_new(uint32_t len)
{
    struct num *x = churn_alloc(sizeof *x + len * sizeof(uint32_t));
    x->len = len;
    return x;
}

static void num_free(struct num *x, const char *where)
{
    if (x->len < 1 || x->len > MAX_LIMBS + 1 || x->sum != num_sum(x))
        bench_corrupt("%s: number %p lost its contents", where, (void *)x);
    free(x);
}

static struct num *num_random(uint64_t *rng)
{
    struct num *x = num_new(1 + bench_below(rng, 16));
    for (uint32_t i = 0; i < x->len; i++)
        x->limb[i] = (uint32_t)bench_rand(rng);
    x->sum = num_sum(x);
    return x;
}

/* a + b, truncated to MAX_LIMBS limbs so numbers do not grow forever. */
static struct num *num_add(const struct num *a, const struct num *b)
{
    uint32_t n = a->len > b->len ? a->len : b->len;
    uint64_t carry = 0;
    uint32_t tmp[MAX_LIMBS + 1];
    for (uint32_t i = 0; i < n; i++) {
        uint64_t s = carry + (i < a->len ? a->limb[i] : 0) + (i < b->len ? b->limb[i] : 0);
        tmp[i] = (uint32_t)s;
        carry = s >> 32;
    }
    if (carry && n < MAX_LIMBS)
        tmp[n++] = (uint32_t)carry;
    struct num *c = num_new(n);
    memcpy(c->limb, tmp, n * sizeof(uint32_t));
    c->sum = num_sum(c);
    return c;
}

/* A scaled copy with one more limb: the short-lived temporary of a
 * multiply step, freed right after its single use. */
static struct num *num_scale(const struct num *a, uint32_t k)
{
    struct num *c = num_new(a->len + 1);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        uint64_t p = (uint64_t)a->limb[i] * k + carry;
        c->limb[i] = (uint32_t)p;
        carry = p >> 32;
    }
    c->limb[a->len] = (uint32_t)carry;
    c->sum = num_sum(c);
    return c;
}

static uint32_t term_check(uint32_t seq, uint32_t plen)
{
    return (uint32_t)bench_mix(((uint64_t)seq << 32) | plen);
}

static void list_free(struct term *t)
{
    while (t != NULL) {
        struct term *next = t->next;
        if (t->plen > 40 || t->check != term_check(t->seq, t->plen))
            bench_corrupt("term %p header overwritten", (void *)t);
        for (uint32_t i = 0; i < t->plen; i++)
            if (t->payload[i] != (unsigned char)(t->seq + i))
                bench_corrupt("term %p payload byte %u overwritten", (void *)t, i);
        free(t);
        t = next;
    }
}

static void hnode_free(struct hnode *h)
{
    if (h->check != ~bench_mix(h->key))
        bench_corrupt("hash node %p overwritten", (void *)h);
    free(h);
}

int main(int argc, char **argv)
{
    bench_name = "churn";
    if (argc > 3)
        bench_die(BENCH_EXIT_USAGE, "usage: churn [steps [seed]]");
    uint64_t steps = bench_arg(argc, argv, 1, "steps", 4000000, 1, UINT64_C(1) << 40);
    uint64_t rng = bench_rng_seed(bench_arg(argc, argv, 2, "seed", 42, 0, UINT64_MAX));

    double t0 = bench_now();

    struct num *pool[POOL];
    for (unsigned i = 0; i < POOL; i++)
        pool[i] = num_random(&rng);

    struct term *list = NULL;
    uint32_t list_len = 0, list_target = 16, seq = 0;

    struct hnode *bucket[HASH_BUCKETS] = {0};
    uint32_t hash_count = 0;

    for (uint64_t s = 0; s < steps; s++) {
        /* Numbers: c = a + b replaces a random entry; a temporary lives
         * for one statement. */
        struct num *a = pool[bench_below(&rng, POOL)];
        struct num *b = pool[bench_below(&rng, POOL)];
        struct num *c = num_add(a, b);
        struct num *t = num_scale(c, (uint32_t)bench_rand(&rng) | 1);
        c->limb[0] ^= t->limb[0] & 1; /* use the temporary */
        c->sum = num_sum(c);
        num_free(t, "temporary");
        unsigned victim = bench_below(&rng, POOL);
        num_free(pool[victim], "pool");
        pool[victim] = c;
        /* Now and then a fresh small number, as when a program reads input. */
        if (bench_below(&rng, 8) == 0) {
            victim = bench_below(&rng, POOL);
            num_free(pool[victim], "pool");
            pool[victim] = num_random(&rng);
        }

        /* Term list: one node per step, whole list freed at its target. */
        uint32_t plen = bench_below(&rng, 41);
        struct term *n = churn_alloc(sizeof *n + plen);
        n->seq = seq++;
        n->plen = plen;
        n->check = term_check(n->seq, plen);
        for (uint32_t i = 0; i < plen; i++)
            n->payload[i] = (unsigned char)(n->seq + i);
        n->next = list;
        list = n;
        if (++list_len >= list_target) {
            list_free(list);
            list = NULL;
            list_len = 0;
            list_target = 4 + bench_below(&rng, 253);
        }

        /* Hash set: insert; over the limit, drop a random bucket. */
        uint64_t key = bench_rand(&rng);
        size_t words = bench_below(&rng, 13); /* 24 + 8 * 0..12 = 24..120 bytes */
        struct hnode *h = churn_alloc(sizeof *h + words * sizeof(uint64_t));
        h->key = key;
        h->check = ~bench_mix(key);
        unsigned bi = (unsigned)(key % HASH_BUCKETS);
        h->next = bucket[bi];
        bucket[bi] = h;
        if (++hash_count > HASH_LIMIT) {
            unsigned d = bench_below(&rng, HASH_BUCKETS);
            while (bucket[d] == NULL)
                d = (d + 1) % HASH_BUCKETS;
            for (struct hnode *x = bucket[d], *next; x != NULL; x = next) {
                next = x->next;
                hnode_free(x);
                hash_count--;
            }
            bucket[d] = NULL;
        }
    }

    /* Tear down, checking everything that is still live. */
    for (unsigned i = 0; i < POOL; i++)
        num_free(pool[i], "final");
    list_free(list);
    for (unsigned i = 0; i < HASH_BUCKETS; i++)
        for (struct hnode *x = bucket[i], *next; x != NULL; x = next) {
            next = x->next;
            hnode_free(x);
        }

    double t1 = bench_now();
    bench_result(t1 - t0, mallocs, "steps=%" PRIu64, steps);
    return 0;
}
