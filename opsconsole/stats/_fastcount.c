/*
 * _fastcount: parse + count a chunk of an nginx access log in one C pass.
 *
 * Optional accelerator for the history mode of opsconsole.stats.traffic (`opsconsole stats
 * --since all`).  The pure-Python path (one bytes-regex `findall` per chunk, then
 * `Counter.update` per field) stays the reference and the fallback; opsconsole/stats/fast.py is
 * the typed wrapper and tests/test_fastcount.py checks that both give identical results.
 *
 * What a "parsed line" is comes from the regex compile_format(fmt) builds (logformat.py): a
 * sequence of pieces, one per literal run and per variable of the log_format.  fast.py turns
 * the pieces into a small program (the OP_* codes below, one per piece) when it can prove the
 * pieces' regexes are the ones this file reproduces and that one left-to-right pass finds the
 * regex's match; otherwise the Python path parses that format.  For `combined`:
 *
 *   ^((\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|[^\s"]+) - [^\s]* \[(TIME)\] "([A-Za-z]*) ?(WORD)BODY"
 *    (\d{3}) [^\s]* "BODY" "(BODY)"(?:[ \t\r][^\n]*)?$            (re.MULTILINE, bytes)
 *
 *   TIME = \d\d/(?:Jan|Feb|...|Dec)/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}
 *   BODY = [^"\\\n]*(?:\\.[^"\\\n]*)*      WORD = the same without spaces
 *
 * Why a scanner without backtracking can reproduce it exactly: no part of the regex can match
 * '\n', so every match lies inside one line and starts at its first byte; and every piece has
 * exactly one way to end:
 *   - a greedy run of a class that cannot contain the byte required after it ([^\s"]+ then ' ',
 *     [^\s]* then ' ', [^,\n]* then ',', \d+ then a non-digit) cannot give back bytes usefully:
 *     a shorter run is followed by a byte of the class, never by the delimiter (fast.py builds
 *     a program only where the next literal's first byte, or the end's, is outside the class);
 *   - BODY tokenises left to right (a backslash always takes the next byte, except '\n'), so
 *     its only possible end is the first token boundary not followed by a consumable byte; the
 *     closing quote must sit exactly there;
 *   - in the request, METHOD/' '/WORD/BODY together match exactly what BODY alone matches, so the
 *     request's end is fixed and the first (greedy) split the engine tries always succeeds:
 *     METHOD = the leading letters, one optional space, WORD = the next space-free word;
 *   - CLIENT's IPv4 alternative, when it fits, ends where the [^\s"]+ alternative would end, so
 *     if the rest of the line fails after it, it fails after the fallback too.  Hence: client =
 *     the leading [^\s"]+ run; net = its first three octets iff the whole run is
 *     d{1,3}.d{1,3}.d{1,3}.d{1,3}, else empty (the 2nd alternative leaves group 2 empty);
 *   - times and the status have a fixed length (ISO 8601's zone is 'Z' or six bytes, told
 *     apart by its first byte); a lazy [^\n]*? can only be the last piece (fast.py), where it
 *     ends at the first [ \t\r] or the line's end, as the end piece requires.
 * `\s` in a bytes pattern is [ \t\n\r\f\v]; `\d` and [A-Za-z] are ASCII only.
 *
 * Times: the regex checks only the shape; Python's parser then drops a line whose time has no
 * epoch second (year 0000, 31 February in ISO 8601).  With check_time, a line whose time C
 * cannot vouch for is not counted but returned as "unsure", for Python to count.
 *
 * Counting: each field goes first into a hash table of C entries (no Python objects per line):
 * count_lines() uses per-call tables whose keys point into the chunk, flushed into the caller's
 * dicts once per distinct key at the end of the call, in first-seen order, so new keys enter
 * the dicts in the same order Counter.update(iterable) would insert them.  A Tally keeps its
 * tables across chunks (keys copied into an arena) until the caller exports them, so a client
 * that recurs in every chunk becomes a Python object once, not once per chunk.  That cuts the
 * per-line cost from ~7 bytes objects + dict updates to a few hash probes: agents, methods,
 * seconds and busy nets repeat a lot within a chunk.
 *
 * Distinct clients: a HyperLogLog with 2**14 one-byte registers kept in a caller's bytearray.
 * The hash is XXH64 (seed 0) of the client bytes; register index = its low 14 bits, value = 1 +
 * number of trailing zero bits of the remaining 50 bits (51 if they are all zero), the layout
 * Redis uses, so fast.hll_estimate() can apply Ertl's improved estimator.
 *
 * The GIL is released while a chunk is parsed and counted into the C tables (only the raw
 * allocator is used there); the dicts are updated with it held.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define HLL_P 14
#define HLL_REGISTERS (1 << HLL_P)
#define HLL_Q (64 - HLL_P)


/* ------------------------------------------------------------------ byte classes */

enum {
    C_SPACE = 1, /* \s of a bytes regex: [ \t\n\r\f\v] */
    C_DIGIT = 2, /* \d: [0-9] */
    C_ALPHA = 4, /* [A-Za-z] */
};

static unsigned char cls[256];

static void
init_classes(void)
{
    memset(cls, 0, sizeof cls);
    cls[' '] = cls['\t'] = cls['\n'] = cls['\r'] = cls['\f'] = cls['\v'] = C_SPACE;
    for (int c = '0'; c <= '9'; c++)
        cls[c] = C_DIGIT;
    for (int c = 'A'; c <= 'Z'; c++)
        cls[c] = cls[c + 32] = C_ALPHA;
}

#define IS_SPACE(c) (cls[(unsigned char)(c)] & C_SPACE)
#define IS_DIGIT(c) (cls[(unsigned char)(c)] & C_DIGIT)
#define IS_ALPHA(c) (cls[(unsigned char)(c)] & C_ALPHA)

/* ------------------------------------------------------------------ XXH64 */

/* Reference XXH64 (github.com/Cyan4973/xxHash, BSD-2).  Bytes are assembled little-endian by
 * hand: the result is the same on every platform, and compilers turn it into one load. */

#define XP1 11400714785074694791ULL
#define XP2 14029467366897019727ULL
#define XP3 1609587929392839161ULL
#define XP4 9650029242287828579ULL
#define XP5 2870177450012600261ULL

static inline uint64_t
rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t
read64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint32_t
read32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t
xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XP2;
    acc = rotl64(acc, 31);
    return acc * XP1;
}

static inline uint64_t
xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * XP1 + XP4;
}

static uint64_t
xxh64(const unsigned char *p, size_t len, uint64_t seed)
{
    const unsigned char *end = p + len;
    uint64_t h;
    if (len >= 32) {
        const unsigned char *limit = end - 32;
        uint64_t v1 = seed + XP1 + XP2, v2 = seed + XP2, v3 = seed, v4 = seed - XP1;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    }
    else {
        h = seed + XP5;
    }
    h += (uint64_t)len;
    while (end - p >= 8) {
        h ^= xxh_round(0, read64(p));
        h = rotl64(h, 27) * XP1 + XP4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= (uint64_t)read32(p) * XP1;
        h = rotl64(h, 23) * XP2 + XP3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * XP5;
        h = rotl64(h, 11) * XP1;
        p++;
    }
    h ^= h >> 33;
    h *= XP2;
    h ^= h >> 29;
    h *= XP3;
    h ^= h >> 32;
    return h;
}

/* ------------------------------------------------------------------ HyperLogLog */

static inline void
hll_update(unsigned char *registers, uint64_t hash)
{
    uint64_t index = hash & (HLL_REGISTERS - 1);
    /* The sentinel bit caps the value at HLL_Q + 1 when the remaining bits are all zero. */
    uint64_t w = (hash >> HLL_P) | (1ULL << HLL_Q);
    unsigned char rank;
#if defined(__GNUC__) || defined(__clang__)
    rank = (unsigned char)(__builtin_ctzll(w) + 1);
#else
    rank = 1;
    while (!(w & 1)) {
        w >>= 1;
        rank++;
    }
#endif
    if (registers[index] < rank)
        registers[index] = rank;
}

/* ------------------------------------------------------------------ count tables */

/* Keys copied out of chunks, for a Tally's tables (which outlive the chunk). */
typedef struct Block {
    struct Block *next;
    size_t used, size;
    char data[];
} Block;

typedef struct {
    Block *head;
} Arena;

#define ARENA_BLOCK (1 << 20)

static const char *
arena_copy(Arena *ar, const char *src, Py_ssize_t n)
{
    if (n == 0)
        return "";
    Block *b = ar->head;
    if (b == NULL || b->size - b->used < (size_t)n) {
        size_t size = (size_t)n > ARENA_BLOCK ? (size_t)n : ARENA_BLOCK;
        b = PyMem_RawMalloc(sizeof(Block) + size);
        if (b == NULL)
            return NULL;
        b->next = ar->head;
        b->used = 0;
        b->size = size;
        ar->head = b;
    }
    char *p = b->data + b->used;
    memcpy(p, src, (size_t)n);
    b->used += (size_t)n;
    return p;
}

static void
arena_free(Arena *ar)
{
    while (ar->head != NULL) {
        Block *next = ar->head->next;
        PyMem_RawFree(ar->head);
        ar->head = next;
    }
}

/* A key is one span, or two (the seconds table: time, status).  A table without an arena keeps
 * pointers into the caller's buffer, which stays exported (unresizable) for the whole call; a
 * Tally's tables copy each new key into their arena. */
typedef struct {
    const char *a, *b; /* a is NULL when the key is held in `inl` */
    Py_ssize_t alen, blen;
    uint64_t hash;
    Py_ssize_t count;
    char inl[16]; /* a short one-span key (an IPv4 client, a /24): compared without a miss */
} Entry;

#define INLINE_KEY 16

static inline const char *
ekey(const Entry *e)
{
    return e->a != NULL ? e->a : e->inl;
}

/* Compact, insertion-ordered hash table (like CPython's dict): entries in first-seen order,
 * `index` maps a hash slot (linear probing, load <= 1/2) to 0 (empty) or a SLOT: the entry
 * number + 1 in the low 32 bits and the hash's high 32 bits above them, so a probe passes a
 * slot of another key without touching its entry.  Only the raw allocator is used, so tables
 * are filled with the GIL released. */
#define SLOT(i, hash) (((hash) & 0xFFFFFFFF00000000ULL) | (uint64_t)(uint32_t)((i) + 1))
#define SLOT_ENTRY(v) ((Py_ssize_t)((v) & 0xFFFFFFFFULL) - 1)
#define SLOT_TAG_OF(hash) ((hash) & 0xFFFFFFFF00000000ULL)

/* Equal keys of n bytes (n > 0 on both sides, already of the same length): short ones without
 * a call, by overlapping word loads that never read outside [x, x + n). */
static inline int
keq(const char *x, const char *y, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, x, 8);
        memcpy(&b0, y, 8);
        memcpy(&a1, x + n - 8, 8);
        memcpy(&b1, y + n - 8, 8);
        return a0 == b0 && a1 == b1;
    }
    if (n >= 4 && n < 8) {
        uint32_t a0, a1, b0, b1;
        memcpy(&a0, x, 4);
        memcpy(&b0, y, 4);
        memcpy(&a1, x + n - 4, 4);
        memcpy(&b1, y + n - 4, 4);
        return a0 == b0 && a1 == b1;
    }
    if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (x[i] != y[i])
                return 0;
        return 1;
    }
    return memcmp(x, y, n) == 0;
}
typedef struct {
    int pair;     /* keys are (a, b) tuples */
    Arena *arena; /* NULL: keys point into the chunk being counted */
    Entry *entries;
    Py_ssize_t n, cap;
    uint64_t *index;
    size_t mask;
} Table;

/* Returns -1 when out of memory (no exception set: the caller may not hold the GIL). */
static int
table_init(Table *t, int pair, Arena *arena)
{
    memset(t, 0, sizeof *t);
    t->pair = pair;
    t->arena = arena;
    t->cap = 64;
    t->mask = 127;
    t->entries = PyMem_RawMalloc(sizeof(Entry) * (size_t)t->cap);
    t->index = PyMem_RawCalloc(t->mask + 1, sizeof(uint64_t));
    if (t->entries == NULL || t->index == NULL)
        return -1;
    return 0;
}

static void
table_free(Table *t)
{
    PyMem_RawFree(t->entries);
    PyMem_RawFree(t->index);
    t->entries = NULL;
    t->index = NULL;
    t->n = 0;
}

static void arena_free(Arena *ar);

/* Empty the table (and the copies of its keys: each table has its own arena, so a table that
 * is exported again and again never holds more than its live keys). */
static void
table_reset(Table *t)
{
    t->n = 0;
    memset(t->index, 0, sizeof(uint64_t) * (t->mask + 1));
    if (t->arena != NULL)
        arena_free(t->arena);
}

/* Double the entry array and the slot array (rehashing from the stored hashes). */
static int
table_grow(Table *t)
{
    Py_ssize_t cap = t->cap * 2;
    size_t slots = (size_t)cap * 2, mask = slots - 1;
    Entry *entries = PyMem_RawRealloc(t->entries, sizeof(Entry) * (size_t)cap);
    if (entries == NULL)
        return -1;
    t->entries = entries;
    uint64_t *index = PyMem_RawCalloc(slots, sizeof(uint64_t));
    if (index == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < t->n; i++) {
        size_t s = (size_t)entries[i].hash & mask;
        while (index[s] != 0)
            s = (s + 1) & mask;
        index[s] = SLOT(i, entries[i].hash);
    }
    PyMem_RawFree(t->index);
    t->index = index;
    t->mask = mask;
    t->cap = cap;
    return 0;
}

/* Count n occurrences of key (a, alen)(b, blen) with the given hash.  Returns 1 if the key was
 * new to the table, 0 if it was already there, -1 when out of memory (no exception set). */
static int
table_add(Table *t, const char *a, Py_ssize_t alen, const char *b, Py_ssize_t blen, uint64_t hash,
          Py_ssize_t n)
{
    size_t s = (size_t)hash & t->mask;
    uint64_t v, tag = SLOT_TAG_OF(hash);
    while ((v = t->index[s]) != 0) {
        if ((v & 0xFFFFFFFF00000000ULL) == tag) {
            Entry *e = &t->entries[SLOT_ENTRY(v)];
            if (e->hash == hash && e->alen == alen && e->blen == blen &&
                (alen == 0 || keq(ekey(e), a, (size_t)alen)) &&
                (blen == 0 || keq(e->b, b, (size_t)blen))) {
                e->count += n;
                return 0;
            }
        }
        s = (s + 1) & t->mask;
    }
    if (t->n == t->cap) {
        if (t->cap >= INT32_MAX / 4 || table_grow(t) < 0)
            return -1;
        s = (size_t)hash & t->mask;
        while (t->index[s] != 0)
            s = (s + 1) & t->mask;
    }
    Entry *e = &t->entries[t->n];
    if (blen == 0 && alen <= INLINE_KEY) {
        memcpy(e->inl, a, (size_t)alen);
        a = NULL;
    }
    else if (t->arena != NULL) {
        a = arena_copy(t->arena, a, alen);
        b = a != NULL && blen ? arena_copy(t->arena, b, blen) : b;
        if (a == NULL || (blen && b == NULL))
            return -1;
    }
    e->a = a;
    e->alen = alen;
    e->b = b;
    e->blen = blen;
    e->hash = hash;
    e->count = n;
    t->index[s] = SLOT(t->n, hash);
    t->n++;
    return 1;
}

/* dict[key] += n, as Counter.update would do it (old + 1, n times, is old + n for ints). */
static int
dict_add(PyObject *dict, PyObject *key, Py_ssize_t n)
{
    PyObject *old = PyDict_GetItemWithError(dict, key); /* borrowed */
    PyObject *val;
    if (old == NULL) {
        if (PyErr_Occurred())
            return -1;
        val = PyLong_FromSsize_t(n);
    }
    else {
        long long v = 0;
        int overflow = 1;
        if (PyLong_CheckExact(old)) {
            v = PyLong_AsLongLongAndOverflow(old, &overflow);
            if (v == -1 && PyErr_Occurred())
                return -1;
        }
        if (!overflow && v <= LLONG_MAX - n) {
            val = PyLong_FromLongLong(v + n);
        }
        else {
            /* A big or non-int value: generic addition, which may run Python code, so hold our
             * own reference to `old` (the dict could drop it meanwhile). */
            PyObject *inc = PyLong_FromSsize_t(n);
            if (inc == NULL)
                return -1;
            Py_INCREF(old);
            val = PyNumber_Add(old, inc);
            Py_DECREF(old);
            Py_DECREF(inc);
        }
    }
    if (val == NULL)
        return -1;
    int r = PyDict_SetItem(dict, key, val);
    Py_DECREF(val);
    return r;
}

/* Add every entry's count to `dict` (GIL held; NULL: drop them) and empty the table. */
static int
table_flush(Table *t, PyObject *dict)
{
    int rc = 0;
    if (dict != NULL) {
        for (Py_ssize_t i = 0; i < t->n; i++) {
            Entry *e = &t->entries[i];
            PyObject *key;
            if (t->pair) {
                PyObject *a = PyBytes_FromStringAndSize(ekey(e), e->alen);
                PyObject *b = a ? PyBytes_FromStringAndSize(e->b, e->blen) : NULL;
                key = b ? PyTuple_Pack(2, a, b) : NULL;
                Py_XDECREF(a);
                Py_XDECREF(b);
            }
            else {
                key = PyBytes_FromStringAndSize(ekey(e), e->alen);
            }
            if (key == NULL) {
                rc = -1;
                break;
            }
            int r = dict_add(dict, key, e->count);
            Py_DECREF(key);
            if (r < 0) {
                rc = -1;
                break;
            }
        }
    }
    table_reset(t);
    return rc;
}

/* ------------------------------------------------------------------ the line scanner */

/* The fields a program captures (slot numbers in the program's bytes). */
enum { F_CLIENT, F_TIME, F_METHOD, F_PATH, F_STATUS, F_AGENT, N_FIELDS };
#define NO_SLOT 0xff

typedef struct {
    const char *at[N_FIELDS];
    Py_ssize_t len[N_FIELDS];
    Py_ssize_t net_len;
    int unsure; /* the time has the right shape, but only Python can say if it has an epoch */
} Fields;

/* Program opcodes (fast.py encodes them from logformat's pieces; see fast._encode). */
enum {
    OP_LIT = 'L',      /* L n_hi n_lo bytes: exactly these bytes */
    OP_CLIENT = 'C',   /* ((\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|[^\s"]+) -> client, net */
    OP_NOSPACE = 'S',  /* S slot: [^\s]* */
    OP_NOTBYTE = 'B',  /* B d slot: [^d\n]* */
    OP_TOBLANK = 'T',  /* T slot: [^\n]*? before the end: up to the first [ \t\r] or the end */
    OP_BODY = 'Q',     /* Q slot: BODY, inside quotes */
    OP_REQUEST = 'R',  /* ([A-Za-z]*) ?(WORD)BODY -> method, path */
    OP_ALPHA = 'A',    /* A slot: [A-Za-z]* */
    OP_LOCAL = 'l',    /* (TIME_LOCAL) -> time */
    OP_ISO = 'i',      /* (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z)) -> time */
    OP_MSEC = 'm',     /* (\d+\.\d+) -> time (its whole seconds, when exact) */
    OP_STATUS = 's',   /* (\d{3}) -> status */
    OP_END = 'E',      /* (?:[ \t\r][^\n]*)?$ */
};

/* Length of "a.b.c" if the whole client is d{1,3}.d{1,3}.d{1,3}.d{1,3}, else 0. */
static Py_ssize_t
ipv4_net_len(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0, net = 0;
    for (int octet = 0; octet < 4; octet++) {
        Py_ssize_t start = i;
        /* Look at up to 4 digits: a 4-digit run defeats \d{1,3} (its next byte must be '.'
         * or, for the last octet, the byte after the client). */
        while (i < n && i - start < 4 && IS_DIGIT(s[i]))
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (octet < 3) {
            if (i >= n || s[i] != '.')
                return 0;
            if (octet == 2)
                net = i;
            i++;
        }
    }
    return i == n ? net : 0;
}

static inline int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The /48 of an IPv6 client whose first three hextets are written out, formatted as
 * opsconsole.stats.snapshot.subnet_of formats it ("2001:db8:7::/48", zero hextets at its end
 * merged into the "::"), into out (at least 24 bytes); its length, or 0 if the client is not
 * of that shape (subnet_of's regex ([0-9a-fA-F]{1,4}):(…):(…):[0-9a-fA-F:]+, fullmatch): then
 * Python maps it. */
static Py_ssize_t
v6_net48(const char *s, Py_ssize_t n, char *out)
{
    unsigned h[3];
    Py_ssize_t i = 0;
    for (int k = 0; k < 3; k++) {
        Py_ssize_t start = i;
        unsigned v = 0;
        int d;
        while (i < n && i - start < 5 && (d = hex_value(s[i])) >= 0) {
            v = v * 16 + (unsigned)d;
            i++;
        }
        if (i == start || i - start > 4 || i >= n || s[i] != ':')
            return 0;
        h[k] = v;
        i++;
    }
    if (i >= n)
        return 0;
    for (Py_ssize_t j = i; j < n; j++)
        if (s[j] != ':' && hex_value(s[j]) < 0)
            return 0;
    int len;
    if (h[2])
        len = snprintf(out, 24, "%x:%x:%x::/48", h[0], h[1], h[2]);
    else if (h[1])
        len = snprintf(out, 24, "%x:%x::/48", h[0], h[1]);
    else if (h[0])
        len = snprintf(out, 24, "%x::/48", h[0]);
    else
        len = snprintf(out, 24, "::/48");
    return len > 0 && len < 24 ? len : 0;
}

static const char MONTHS[12][3] = {
    {'J', 'a', 'n'}, {'F', 'e', 'b'}, {'M', 'a', 'r'}, {'A', 'p', 'r'},
    {'M', 'a', 'y'}, {'J', 'u', 'n'}, {'J', 'u', 'l'}, {'A', 'u', 'g'},
    {'S', 'e', 'p'}, {'O', 'c', 't'}, {'N', 'o', 'v'}, {'D', 'e', 'c'},
};

#define TIME_LEN 26 /* dd/Mon/yyyy:hh:mm:ss +zzzz */

/* Whether t[0..n) matches `shape` ('9' a digit, 'S' a sign, anything else itself). */
static int
has_shape(const char *t, const char *shape, int n)
{
    for (int i = 0; i < n; i++) {
        char want = shape[i];
        if (want == '9') {
            if (!IS_DIGIT(t[i]))
                return 0;
        }
        else if (want == 'S') {
            if (t[i] != '+' && t[i] != '-')
                return 0;
        }
        else if (want != 'M' && t[i] != want) {
            return 0;
        }
    }
    return 1;
}

/* Caller guarantees TIME_LEN readable bytes. */
static int
is_time(const char *t)
{
    if (!has_shape(t, "99/MMM/9999:99:99:99 S9999", TIME_LEN))
        return 0;
    for (int m = 0; m < 12; m++)
        if (memcmp(t + 3, MONTHS[m], 3) == 0)
            return 1;
    return 0;
}

static inline int
num2(const char *t)
{
    return (t[0] - '0') * 10 + (t[1] - '0');
}

/* An ISO 8601 time of the right shape that datetime.fromisoformat surely takes: every part in
 * its range (day within its month).  Anything else is left to Python ("unsure"). */
static int
iso_surely_valid(const char *t, Py_ssize_t n)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = num2(t) * 100 + num2(t + 2), month = num2(t + 5), day = num2(t + 8);
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days[month - 1])
        return 0;
    if (month == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        return 0;
    if (num2(t + 11) > 23 || num2(t + 14) > 59 || num2(t + 17) > 59)
        return 0;
    return n == 20 || (num2(t + 20) <= 23 && num2(t + 23) <= 59);
}

/* End of a quoted BODY starting at p: the first token boundary whose next byte cannot be
 * consumed ('"', or a backslash with nothing after it on the line).  `e` is the line end, so
 * "any byte but \n" after a backslash is simply "a byte before e". */
static inline const char *
scan_body(const char *p, const char *e)
{
    /* memchr (vectorised) finds the quote, then any backslash before it; a backslash takes
     * the byte after it (a quote too), and the search goes on from there. */
    for (;;) {
        const char *quote = p < e ? memchr(p, '"', (size_t)(e - p)) : NULL;
        const char *stop = quote != NULL ? quote : e;
        const char *bs = p < stop ? memchr(p, '\\', (size_t)(stop - p)) : NULL;
        if (bs == NULL)
            return stop;
        if (e - bs < 2)
            return bs;
        p = bs + 2;
    }
}

/* Same for WORD, which also stops at a space. */
static inline const char *
scan_word(const char *p, const char *e)
{
    while (p < e) {
        char c = *p;
        if (c == '"' || c == ' ')
            break;
        if (c == '\\') {
            if (e - p < 2)
                break;
            p += 2;
        }
        else {
            p++;
        }
    }
    return p;
}

static inline void
capture(Fields *f, unsigned char slot, const char *at, Py_ssize_t len)
{
    if (slot < N_FIELDS) {
        f->at[slot] = at;
        f->len[slot] = len;
    }
}

/* Match one line [p, e) (e = its '\n' or the end of the chunk) against the program's regex.
 * Every piece ends in exactly one place (see fast.py: a program is only built where that
 * holds), so one left-to-right pass, without backtracking, finds the regex's match. */
static int
parse_line(const unsigned char *prog, Py_ssize_t plen, int check_time, const char *p,
           const char *e, Fields *f)
{
    const char *q = p, *r;
    const unsigned char *op = prog, *pend = prog + plen;
    f->unsure = 0;
    while (op < pend) {
        switch (*op) {
        case OP_LIT: {
            Py_ssize_t n = (Py_ssize_t)op[1] << 8 | op[2];
            if (e - q < n || memcmp(q, op + 3, (size_t)n) != 0)
                return 0;
            q += n;
            op += 3 + n;
            continue;
        }
        case OP_CLIENT:
            r = q;
            while (r < e && !IS_SPACE(*r) && *r != '"')
                r++;
            if (r == q)
                return 0;
            f->at[F_CLIENT] = q;
            f->len[F_CLIENT] = r - q;
            f->net_len = ipv4_net_len(q, r - q);
            q = r;
            op += 1;
            continue;
        case OP_NOSPACE:
            r = q;
            while (r < e && !IS_SPACE(*r))
                r++;
            capture(f, op[1], q, r - q);
            q = r;
            op += 2;
            continue;
        case OP_NOTBYTE:
            r = memchr(q, op[1], (size_t)(e - q));
            if (r == NULL)
                r = e;
            capture(f, op[2], q, r - q);
            q = r;
            op += 3;
            continue;
        case OP_TOBLANK:
            r = q;
            while (r < e && *r != ' ' && *r != '\t' && *r != '\r')
                r++;
            capture(f, op[1], q, r - q);
            q = r;
            op += 2;
            continue;
        case OP_BODY:
            r = scan_body(q, e);
            capture(f, op[1], q, r - q);
            q = r;
            op += 2;
            continue;
        case OP_REQUEST:
            /* METHOD = leading letters, one optional space, PATH = next word, rest. */
            r = q;
            while (r < e && IS_ALPHA(*r))
                r++;
            f->at[F_METHOD] = q;
            f->len[F_METHOD] = r - q;
            if (r < e && *r == ' ')
                r++;
            q = scan_word(r, e);
            f->at[F_PATH] = r;
            f->len[F_PATH] = q - r;
            q = scan_body(q, e);
            op += 1;
            continue;
        case OP_ALPHA:
            r = q;
            while (r < e && IS_ALPHA(*r))
                r++;
            capture(f, op[1], q, r - q);
            q = r;
            op += 2;
            continue;
        case OP_LOCAL:
            if (e - q < TIME_LEN || !is_time(q))
                return 0;
            f->at[F_TIME] = q;
            f->len[F_TIME] = TIME_LEN;
            /* Year 0000 has no epoch second: Python decides (it drops the line). */
            if (check_time && memcmp(q + 7, "0000", 4) == 0)
                f->unsure = 1;
            q += TIME_LEN;
            op += 1;
            continue;
        case OP_ISO: {
            Py_ssize_t n;
            if (e - q < 20 || !has_shape(q, "9999-99-99T99:99:99", 19))
                return 0;
            if (q[19] == 'Z')
                n = 20;
            else if (e - q >= 25 && has_shape(q + 19, "S99:99", 6))
                n = 25;
            else
                return 0;
            f->at[F_TIME] = q;
            f->len[F_TIME] = n;
            if (check_time && !iso_surely_valid(q, n))
                f->unsure = 1;
            q += n;
            op += 1;
            continue;
        }
        case OP_MSEC: {
            const char *dot;
            r = q;
            while (r < e && IS_DIGIT(*r))
                r++;
            if (r == q || r == e || *r != '.')
                return 0;
            dot = r++;
            while (r < e && IS_DIGIT(*r))
                r++;
            if (r == dot + 1)
                return 0;
            f->at[F_TIME] = q;
            /* Keyed by the whole seconds where int(float(text)) surely is them: the seconds
             * table then holds one key per second, not per millisecond. */
            if (dot - q <= 12 && r - dot <= 4)
                f->len[F_TIME] = dot - q;
            else {
                f->len[F_TIME] = r - q;
                if (check_time)
                    f->unsure = 1;
            }
            q = r;
            op += 1;
            continue;
        }
        case OP_STATUS:
            if (e - q < 3 || !IS_DIGIT(q[0]) || !IS_DIGIT(q[1]) || !IS_DIGIT(q[2]))
                return 0;
            f->at[F_STATUS] = q;
            f->len[F_STATUS] = 3;
            q += 3;
            op += 1;
            continue;
        case OP_END:
            return q == e || *q == ' ' || *q == '\t' || *q == '\r';
        default:
            return 0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ Python API */

enum { T_CLIENTS, T_NETS, T_OTHERS, T_PATHS, T_AGENTS, T_METHODS, T_SECONDS, N_TABLES };

/* (start, end) offsets of the lines only Python can judge, gathered without the GIL. */
typedef struct {
    Py_ssize_t *at;
    Py_ssize_t n, cap;
} Spans;

static int
spans_add(Spans *s, Py_ssize_t a, Py_ssize_t b)
{
    if (s->n + 2 > s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 64;
        Py_ssize_t *at = PyMem_RawRealloc(s->at, sizeof(Py_ssize_t) * (size_t)cap);
        if (at == NULL)
            return -1;
        s->at = at;
        s->cap = cap;
    }
    s->at[s->n++] = a;
    s->at[s->n++] = b;
    return 0;
}

static PyObject *
spans_list(const Spans *s, Py_ssize_t offset)
{
    PyObject *list = PyList_New(s->n / 2);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < s->n; i += 2) {
        PyObject *span = Py_BuildValue("(nn)", s->at[i] + offset, s->at[i + 1] + offset);
        if (span == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i / 2, span);
    }
    return list;
}

/* The keys of one parsed line, counted one line later (scan). */
typedef struct {
    int n;
    char net48[24]; /* an IPv6 client's /48, made here (v6_net48) */
    int table[N_TABLES];
    const char *a[N_TABLES], *b[N_TABLES];
    Py_ssize_t alen[N_TABLES], blen[N_TABLES];
    uint64_t hash[N_TABLES];
} Pending;

static inline void
pending_put(Pending *pd, int table, const char *a, Py_ssize_t alen, const char *b,
            Py_ssize_t blen, uint64_t hash)
{
    int k = pd->n++;
    pd->table[k] = table;
    pd->a[k] = a;
    pd->alen[k] = alen;
    pd->b[k] = b;
    pd->blen[k] = blen;
    pd->hash[k] = hash;
}

static inline void
pending_prefetch(const Table *tables, const Pending *pd)
{
#if defined(__GNUC__) || defined(__clang__)
    for (int k = 0; k < pd->n; k++) {
        const Table *t = &tables[pd->table[k]];
        __builtin_prefetch(&t->index[(size_t)pd->hash[k] & t->mask]);
    }
#else
    (void)tables;
    (void)pd;
#endif
}

/* The second look, a line later: the slot is in cache now, so fetch the entry it points to
 * (only a hint: the table may change before the line is counted, which probes afresh). */
static inline void
pending_prefetch_entries(const Table *tables, const Pending *pd)
{
#if defined(__GNUC__) || defined(__clang__)
    for (int k = 0; k < pd->n; k++) {
        const Table *t = &tables[pd->table[k]];
        uint64_t v = t->index[(size_t)pd->hash[k] & t->mask];
        Py_ssize_t i = SLOT_ENTRY(v);
        if (v != 0 && i < t->n && (v & 0xFFFFFFFF00000000ULL) == SLOT_TAG_OF(pd->hash[k]))
            __builtin_prefetch(&t->entries[i]);
    }
#else
    (void)tables;
    (void)pd;
#endif
}

static int
pending_apply(Table *tables, const Pending *pd, unsigned char *registers)
{
    for (int k = 0; k < pd->n; k++) {
        int r = table_add(&tables[pd->table[k]], pd->a[k], pd->alen[k], pd->b[k], pd->blen[k],
                          pd->hash[k], 1);
        if (r < 0)
            return -1;
        if (r == 1 && pd->table[k] == T_CLIENTS && registers != NULL)
            hll_update(registers, pd->hash[k]);
    }
    return 0;
}

/* Parse every line of [start, start + len) with the program and count its fields into the
 * tables whose `want` is set (registers: the HLL of new clients, or NULL).  Pure C: runs with
 * the GIL released.  Returns -1 when out of memory. */
static int
scan(const unsigned char *prog, Py_ssize_t plen, int check_time, const char *start,
     Py_ssize_t len, Table *tables, const int *want, unsigned char *registers, Spans *unsure,
     Py_ssize_t *lines_out, Py_ssize_t *parsed_out)
{
    int want_client_hash = want[T_CLIENTS] || want[T_OTHERS];
    const char *p = start, *end = start + len;
    Py_ssize_t lines = 0, parsed = 0;
    Fields f;
    memset(&f, 0, sizeof f);
    /* A line is parsed into ring[cur], its table slots fetched; the line before (cur - 1) has
     * its entries fetched; the one before that (cur - 2) is counted.  held: how many parsed
     * lines wait to be counted (0 to 2). */
    Pending ring[3];
    int cur = 0, held = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        lines++;
        for (int k = 0; k < N_FIELDS; k++)
            f.len[k] = 0;
        f.net_len = 0;
        if (parse_line(prog, plen, check_time, p, e, &f)) {
            if (f.unsure) {
                if (spans_add(unsure, p - start, e - start) < 0)
                    return -1;
                p = nl ? nl + 1 : end;
                continue;
            }
            parsed++;
            Pending *pd = &ring[cur];
            pd->n = 0;
            const char *client = f.at[F_CLIENT];
            Py_ssize_t client_len = f.len[F_CLIENT];
            uint64_t hc = want_client_hash
                              ? xxh64((const unsigned char *)client, (size_t)client_len, 0)
                              : 0;
            if (want[T_CLIENTS])
                pending_put(pd, T_CLIENTS, client, client_len, NULL, 0, hc);
            if (f.net_len > 0) {
                if (want[T_NETS])
                    pending_put(pd, T_NETS, client, f.net_len, NULL, 0,
                                xxh64((const unsigned char *)client, (size_t)f.net_len, 0));
            }
            else {
                /* want[T_NETS] == 2: an IPv6 client's /48 is made here, not in Python. */
                Py_ssize_t n48 =
                    want[T_NETS] == 2 ? v6_net48(client, client_len, pd->net48) : 0;
                if (n48 > 0)
                    pending_put(pd, T_NETS, pd->net48, n48, NULL, 0,
                                xxh64((const unsigned char *)pd->net48, (size_t)n48, 0));
                else if (want[T_OTHERS])
                    pending_put(pd, T_OTHERS, client, client_len, NULL, 0, hc);
            }
            static const int field_of[3][2] = {
                {T_PATHS, F_PATH}, {T_AGENTS, F_AGENT}, {T_METHODS, F_METHOD}};
            for (int k = 0; k < 3; k++) {
                int t = field_of[k][0], fl = field_of[k][1];
                if (want[t])
                    pending_put(pd, t, f.at[fl], f.len[fl], NULL, 0,
                                xxh64((const unsigned char *)f.at[fl], (size_t)f.len[fl], 0));
            }
            if (want[T_SECONDS]) {
                /* The status digits seed the time's hash: one hash for the pair. */
                const char *st = f.at[F_STATUS];
                uint64_t seed = (uint64_t)(unsigned char)st[0] << 16 |
                                (uint64_t)(unsigned char)st[1] << 8 | (uint64_t)(unsigned char)st[2];
                pending_put(pd, T_SECONDS, f.at[F_TIME], f.len[F_TIME], st, 3,
                            xxh64((const unsigned char *)f.at[F_TIME], (size_t)f.len[F_TIME],
                                  seed));
            }
            /* This line's slots are fetched while the line before is counted: the tables'
             * cache misses overlap the parsing instead of following it. */
            pending_prefetch(tables, pd);
            if (held >= 1)
                pending_prefetch_entries(tables, &ring[(cur + 2) % 3]);
            if (held == 2 && pending_apply(tables, &ring[(cur + 1) % 3], registers) < 0)
                return -1;
            held += held < 2;
            cur = (cur + 1) % 3;
        }
        p = nl ? nl + 1 : end;
    }
    /* The last two lines (or one), in order. */
    for (int k = 3 - held; k < 3; k++)
        if (pending_apply(tables, &ring[(cur + k) % 3], registers) < 0)
            return -1;
    *lines_out += lines;
    *parsed_out += parsed;
    return 0;
}

static int
dict_or_none(PyObject *o, const char *name, PyObject **out)
{
    if (o == Py_None) {
        *out = NULL;
        return 0;
    }
    if (!PyDict_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict (e.g. a Counter) or None, not %.100s",
                     name, Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = o;
    return 0;
}

/* Export `o` as the writable register array, or leave view->buf NULL for None. */
static int
get_registers(PyObject *o, Py_buffer *view)
{
    view->buf = NULL;
    view->obj = NULL;
    if (o == Py_None)
        return 0;
    if (PyObject_GetBuffer(o, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len != HLL_REGISTERS) {
        PyErr_Format(PyExc_ValueError, "hll must hold %d registers (bytes), not %zd",
                     HLL_REGISTERS, view->len);
        PyBuffer_Release(view);
        view->buf = NULL;
        return -1;
    }
    return 0;
}

static const char *TABLE_NAMES[N_TABLES] = {"clients", "nets",    "others", "paths",
                                            "agents",  "methods", "seconds"};

PyDoc_STRVAR(count_lines_doc,
"count_lines(chunk, program, check_time, clients, nets, others, paths, agents, methods,\n"
"            seconds, hll) -> (lines, parsed, unsure)\n\n"
"Parse a chunk of complete log lines with `program` (fast.py encodes one from a log format)\n"
"and add the fields of every parsed line to the given dicts in place, as Counter.update would\n"
"(keys bytes, values ints): clients (the client), nets (first three octets of IPv4 clients),\n"
"others (the client, when it is not IPv4), paths, agents, methods, seconds (keyed (time,\n"
"status); for $msec the whole seconds).  Any dict may be None.  hll: a writable buffer of 16384\n"
"HyperLogLog registers updated with XXH64 of every parsed client, or None.  lines counts\n"
"newline-terminated lines plus a final piece without newline (blank lines included); parsed\n"
"counts the lines counted.  With check_time, a line whose time has the right shape but may\n"
"have no epoch second is not counted: unsure lists the (start, end) offsets of those lines.\n"
"The chunk is parsed with the GIL released; the dicts are updated after, with it.");

static PyObject *
count_lines(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"chunk",  "program", "check_time", "clients", "nets",
                             "others", "paths",   "agents",     "methods", "seconds",
                             "hll",    NULL};
    Py_buffer chunk, program;
    int check_time;
    PyObject *objs[N_TABLES], *hll_obj;
    PyObject *dicts[N_TABLES];
    Py_buffer regs;
    Table tables[N_TABLES];
    int ntables = 0, rc;
    Spans unsure = {NULL, 0, 0};
    PyObject *result = NULL, *unsure_list = NULL;
    Py_ssize_t lines = 0, parsed = 0;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*pOOOOOOOO:count_lines", kwlist, &chunk,
                                     &program, &check_time, &objs[0], &objs[1], &objs[2],
                                     &objs[3], &objs[4], &objs[5], &objs[6], &hll_obj))
        return NULL;
    regs.obj = NULL;
    for (int i = 0; i < N_TABLES; i++)
        if (dict_or_none(objs[i], TABLE_NAMES[i], &dicts[i]) < 0)
            goto done;
    if (get_registers(hll_obj, &regs) < 0)
        goto done;
    for (; ntables < N_TABLES; ntables++) {
        if (table_init(&tables[ntables], ntables == T_SECONDS, NULL) < 0) {
            ntables++; /* free the partly initialised one too */
            PyErr_NoMemory();
            goto done;
        }
    }
    /* Skip the per-line work of a field nobody asked for (clients still feed the HLL). */
    int want[N_TABLES];
    for (int i = 0; i < N_TABLES; i++)
        want[i] = dicts[i] != NULL;
    want[T_CLIENTS] |= regs.buf != NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = scan(program.buf, program.len, check_time, chunk.buf, chunk.len, tables, want, regs.buf,
              &unsure, &lines, &parsed);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    unsure_list = spans_list(&unsure, 0);
    if (unsure_list == NULL)
        goto done;
    for (int i = 0; i < N_TABLES; i++)
        if (table_flush(&tables[i], dicts[i]) < 0)
            goto done;
    result = Py_BuildValue("(nnO)", lines, parsed, unsure_list);

done:
    /* On error the dicts keep whatever was flushed before it. */
    Py_XDECREF(unsure_list);
    PyMem_RawFree(unsure.at);
    for (int i = 0; i < ntables; i++)
        table_free(&tables[i]);
    if (regs.obj != NULL)
        PyBuffer_Release(&regs);
    PyBuffer_Release(&program);
    PyBuffer_Release(&chunk);
    return result;
}

/* ------------------------------------------------------------------ Tally */

/* The counts of many chunks kept in C (keys copied into an arena), so a key that recurs across
 * chunks crosses into Python once, when its table is exported.  Chunks are parsed with the GIL
 * released: two tallies count two halves of a batch on two threads, and merge() adds one into
 * the other exactly as if it had counted both (same counts, same first-seen order). */
typedef struct {
    PyObject_HEAD
    Table tables[N_TABLES];
    Arena arenas[N_TABLES];
    int want[N_TABLES];
    unsigned char *registers; /* the HLL, or NULL */
    int busy;                 /* a count() is running (on some thread) */
    int ready;
} Tally;

static PyTypeObject TallyType;

static void
tally_clear(Tally *t)
{
    for (int i = 0; i < N_TABLES; i++)
        if (t->tables[i].entries != NULL)
            table_reset(&t->tables[i]);
}

static void
tally_dealloc(Tally *t)
{
    for (int i = 0; i < N_TABLES; i++) {
        table_free(&t->tables[i]);
        arena_free(&t->arenas[i]);
    }
    PyMem_RawFree(t->registers);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int
tally_init(Tally *t, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"clients", "nets", "others", "paths", "agents", "methods",
                             "seconds", "hll",  "v6nets", NULL};
    int w[N_TABLES], hll, v6nets = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "pppppppp|p:Tally", kwlist, &w[0], &w[1],
                                     &w[2], &w[3], &w[4], &w[5], &w[6], &hll, &v6nets))
        return -1;
    if (t->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Tally is already initialised");
        return -1;
    }
    for (int i = 0; i < N_TABLES; i++) {
        if (table_init(&t->tables[i], i == T_SECONDS, &t->arenas[i]) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        t->want[i] = w[i];
    }
    t->want[T_CLIENTS] |= hll;
    if (t->want[T_NETS] && v6nets)
        t->want[T_NETS] = 2; /* scan() makes IPv6 clients' /48s itself */
    if (hll) {
        t->registers = PyMem_RawCalloc(HLL_REGISTERS, 1);
        if (t->registers == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    t->ready = 1;
    return 0;
}

static int
tally_usable(Tally *t)
{
    if (!t->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Tally is not initialised");
        return 0;
    }
    if (t->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Tally is counting on another thread");
        return 0;
    }
    return 1;
}

/* (lines, parsed, unsure) of a scan that returned rc (MemoryError if it ran out). */
static PyObject *
count_result(int rc, const Spans *unsure, Py_ssize_t lines, Py_ssize_t parsed)
{
    if (rc < 0)
        return PyErr_NoMemory();
    PyObject *list = spans_list(unsure, 0);
    if (list == NULL)
        return NULL;
    PyObject *result = Py_BuildValue("(nnO)", lines, parsed, list);
    Py_DECREF(list);
    return result;
}

PyDoc_STRVAR(tally_count_doc,
"count(chunk, program, check_time) -> (lines, parsed, unsure)\n\n"
"count_lines() into this tally's tables instead of dicts (export() hands them over).  The\n"
"GIL is released while the chunk is parsed.  If it raises MemoryError, the tables may hold\n"
"part of the chunk.");

static PyObject *
tally_count(Tally *t, PyObject *args)
{
    Py_buffer chunk, program;
    int check_time, rc;
    Spans unsure = {NULL, 0, 0};
    Py_ssize_t lines = 0, parsed = 0;
    if (!tally_usable(t))
        return NULL;
    if (!PyArg_ParseTuple(args, "y*y*p:count", &chunk, &program, &check_time))
        return NULL;
    t->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = scan(program.buf, program.len, check_time, chunk.buf, chunk.len, t->tables, t->want,
              t->registers, &unsure, &lines, &parsed);
    Py_END_ALLOW_THREADS
    t->busy = 0;
    PyBuffer_Release(&program);
    PyBuffer_Release(&chunk);
    PyObject *result = count_result(rc, &unsure, lines, parsed);
    PyMem_RawFree(unsure.at);
    return result;
}

PyDoc_STRVAR(tally_count_many_doc,
"count_many(pieces, program, check_time) -> (lines, parsed, unsure)\n\n"
"count() of the pieces' concatenation without making it: each piece (a bytes-like object)\n"
"but the last must end with a newline, so that no line spans two pieces (ValueError if one\n"
"does not); unsure offsets are into the concatenation.  The GIL is released while they are\n"
"parsed.");

static PyObject *
tally_count_many(Tally *t, PyObject *args)
{
    PyObject *seq_obj;
    Py_buffer program;
    int check_time, rc = 0;
    if (!tally_usable(t))
        return NULL;
    if (!PyArg_ParseTuple(args, "Oy*p:count_many", &seq_obj, &program, &check_time))
        return NULL;
    PyObject *seq = PySequence_Fast(seq_obj, "count_many() takes a sequence of pieces");
    if (seq == NULL) {
        PyBuffer_Release(&program);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), got = 0;
    Py_buffer *views = PyMem_RawCalloc((size_t)(n ? n : 1), sizeof(Py_buffer));
    PyObject *result = NULL;
    Spans unsure = {NULL, 0, 0};
    Py_ssize_t lines = 0, parsed = 0;
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < n; got++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, got);
        if (PyObject_GetBuffer(item, &views[got], PyBUF_SIMPLE) < 0)
            goto done;
        Py_ssize_t len = views[got].len;
        if (got + 1 < n && len > 0 && ((const char *)views[got].buf)[len - 1] != '\n') {
            got++;
            PyErr_Format(PyExc_ValueError,
                         "piece %zd of %zd does not end with a newline (a line would span two "
                         "pieces)",
                         got, n);
            goto done;
        }
    }
    t->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t base = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        Py_ssize_t first = unsure.n;
        rc = scan(program.buf, program.len, check_time, views[i].buf, views[i].len, t->tables,
                  t->want, t->registers, &unsure, &lines, &parsed);
        for (Py_ssize_t k = first; k < unsure.n; k++)
            unsure.at[k] += base;
        base += views[i].len;
    }
    Py_END_ALLOW_THREADS
    t->busy = 0;
    result = count_result(rc, &unsure, lines, parsed);
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_RawFree(views);
    PyMem_RawFree(unsure.at);
    Py_DECREF(seq);
    PyBuffer_Release(&program);
    return result;
}

PyDoc_STRVAR(tally_merge_doc,
"merge(other) -> None\n\n"
"Add another tally's counts (and HyperLogLog) to this one, keys new to this one after its own\n"
"in the other's first-seen order, and empty the other: the same tables as if this tally had\n"
"counted the other's chunks after its own.");

static PyObject *
tally_merge(Tally *t, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &TallyType)) {
        PyErr_SetString(PyExc_TypeError, "merge() takes a Tally");
        return NULL;
    }
    Tally *o = (Tally *)arg;
    if (o == t) {
        PyErr_SetString(PyExc_ValueError, "a Tally cannot merge itself");
        return NULL;
    }
    if (!tally_usable(t) || !tally_usable(o))
        return NULL;
    for (int i = 0; i < N_TABLES; i++) {
        Table *src = &o->tables[i];
        for (Py_ssize_t k = 0; k < src->n; k++) {
            Entry *e = &src->entries[k];
            if (table_add(&t->tables[i], ekey(e), e->alen, e->b, e->blen, e->hash, e->count) < 0)
                return PyErr_NoMemory();
        }
    }
    if (o->registers != NULL) {
        if (t->registers == NULL) {
            t->registers = PyMem_RawCalloc(HLL_REGISTERS, 1);
            if (t->registers == NULL)
                return PyErr_NoMemory();
        }
        for (int r = 0; r < HLL_REGISTERS; r++)
            if (o->registers[r] > t->registers[r])
                t->registers[r] = o->registers[r];
        memset(o->registers, 0, HLL_REGISTERS);
    }
    tally_clear(o);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(tally_export_doc,
"export(clients, nets, others, paths, agents, methods, seconds, hll) -> None\n\n"
"Add each table's counts to the dict given for it (as count_lines would have) and empty that\n"
"table; a table given None keeps its counts.  hll: registers (a writable 16384-byte buffer)\n"
"that take the register-wise maximum with the tally's, or None.");

static PyObject *
tally_export(Tally *t, PyObject *args)
{
    PyObject *objs[N_TABLES], *dicts[N_TABLES], *hll_obj;
    Py_buffer regs;
    if (!tally_usable(t))
        return NULL;
    if (!PyArg_ParseTuple(args, "OOOOOOOO:export", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5], &objs[6], &hll_obj))
        return NULL;
    for (int i = 0; i < N_TABLES; i++)
        if (dict_or_none(objs[i], TABLE_NAMES[i], &dicts[i]) < 0)
            return NULL;
    if (get_registers(hll_obj, &regs) < 0)
        return NULL;
    if (regs.buf != NULL && t->registers != NULL) {
        unsigned char *into = regs.buf;
        for (int r = 0; r < HLL_REGISTERS; r++)
            if (t->registers[r] > into[r])
                into[r] = t->registers[r];
    }
    if (regs.obj != NULL)
        PyBuffer_Release(&regs);
    for (int i = 0; i < N_TABLES; i++)
        if (dicts[i] != NULL && table_flush(&t->tables[i], dicts[i]) < 0)
            return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ top lists */

typedef struct {
    long long count;
    const char *p; /* the key's bytes */
    Py_ssize_t len;
    PyObject *key; /* the key as bytes, borrowed from a dict the caller keeps unchanged; NULL
                    * for a key of a table (made into bytes only if it makes the list) */
} Ranked;

/* 1 if a ranks below b: a smaller count, or the same count and a larger key (bytes order). */
static int
ranks_below(const Ranked *a, const Ranked *b)
{
    if (a->count != b->count)
        return a->count < b->count;
    int c = memcmp(a->p, b->p, (size_t)(a->len < b->len ? a->len : b->len));
    return c != 0 ? c > 0 : a->len > b->len;
}

static int
cmp_ranked(const void *x, const void *y)
{
    const Ranked *a = x, *b = y;
    return ranks_below(b, a) ? -1 : (ranks_below(a, b) ? 1 : 0);
}

/* The n best items seen, in a heap whose root ranks lowest. */
typedef struct {
    Ranked *h;
    Py_ssize_t size, cap;
} Best;

static void
best_offer(Best *b, Ranked item)
{
    Ranked *h = b->h;
    if (b->size < b->cap) {
        Py_ssize_t i = b->size++;
        h[i] = item;
        while (i > 0 && ranks_below(&h[i], &h[(i - 1) / 2])) {
            Ranked tmp = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
        return;
    }
    if (b->size == 0 || !ranks_below(&h[0], &item))
        return;
    h[0] = item;
    for (Py_ssize_t i = 0;;) {
        Py_ssize_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < b->size && ranks_below(&h[l], &h[m]))
            m = l;
        if (r < b->size && ranks_below(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        Ranked tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

/* The best items, best first, as a list of (key, count). */
static PyObject *
best_list(Best *b)
{
    qsort(b->h, (size_t)b->size, sizeof(Ranked), cmp_ranked);
    PyObject *out = PyList_New(b->size);
    for (Py_ssize_t i = 0; out != NULL && i < b->size; i++) {
        Ranked *r = &b->h[i];
        PyObject *key = r->key;
        if (key != NULL)
            Py_INCREF(key);
        else
            key = PyBytes_FromStringAndSize(r->p, r->len);
        PyObject *pair = key ? Py_BuildValue("(NL)", key, r->count) : NULL;
        if (pair == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

/* A dict's item as a Ranked (with `extra` added to its count); 0 if it is not bytes -> int. */
static int
ranked_item(PyObject *key, PyObject *val, long long extra, Ranked *out)
{
    int overflow = 0;
    if (!PyBytes_CheckExact(key) || !PyLong_CheckExact(val))
        return 0;
    long long v = PyLong_AsLongLongAndOverflow(val, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = (Ranked){v + extra, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), key};
    return 1;
}

/* The entry of `t` holding the one-span key (a, alen) with this hash, or -1. */
static Py_ssize_t
table_find(const Table *t, const char *a, Py_ssize_t alen, uint64_t hash)
{
    size_t s = (size_t)hash & t->mask;
    uint64_t v;
    while ((v = t->index[s]) != 0) {
        Py_ssize_t i = SLOT_ENTRY(v);
        const Entry *e = &t->entries[i];
        if (e->hash == hash && e->alen == alen && e->blen == 0 &&
            (alen == 0 || keq(ekey(e), a, (size_t)alen)))
            return i;
        s = (s + 1) & t->mask;
    }
    return -1;
}

static void
sort_desc(long long *a, Py_ssize_t n)
{
    /* Insertion sort for what quickselect leaves when it stops shrinking fast (bounded). */
    for (Py_ssize_t i = 1; i < n; i++) {
        long long v = a[i];
        Py_ssize_t j = i;
        while (j > 0 && a[j - 1] < v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static int
cmp_desc(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return (a < b) - (a > b);
}

/* The value at index k of a[0..n) sorted in descending order (a is reordered): quickselect,
 * falling back to qsort on the part left when it has taken more rounds than a balanced
 * partitioning would, so crafted counts cannot make it quadratic. */
static long long
select_desc(long long *a, Py_ssize_t n, Py_ssize_t k)
{
    Py_ssize_t lo = 0, hi = n - 1;
    int rounds = 0, limit = 16;
    for (Py_ssize_t m = n; m > 1; m >>= 1)
        limit += 2;
    while (lo < hi) {
        if (hi - lo < 16) {
            sort_desc(a + lo, hi - lo + 1);
            return a[k];
        }
        if (++rounds > limit) {
            qsort(a + lo, (size_t)(hi - lo + 1), sizeof *a, cmp_desc);
            return a[k];
        }
        long long x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi], pivot;
        pivot = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                long long tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* The number of the one-span table called `name`, or -1 with ValueError set. */
static int
single_table(const char *name, const char *method)
{
    for (int i = 0; i < N_TABLES; i++)
        if (i != T_SECONDS && strcmp(name, TABLE_NAMES[i]) == 0)
            return i;
    PyErr_Format(PyExc_ValueError, "%s() takes a one-span table, not %.50s", method, name);
    return -1;
}

PyDoc_STRVAR(tally_settle_doc,
"settle(table, counts, fresh, cap) -> cut or None\n\n"
"Hand one table (a name of a one-span table: clients, nets, others, paths, agents, methods) to\n"
"`counts`, a dict of bytes keys to int counts, as TopCounter.update then prune would: if counts\n"
"and the table together hold at most `cap` distinct keys, export() it into `counts` and return\n"
"None.  Otherwise leave `counts` as it is, put into `fresh` (an empty dict) the keys whose\n"
"added count is above the cut -- the (cap // 2 + 1)-th largest added count -- in the order\n"
"`counts` would hold them after export() (its own keys first, then the table's new ones in\n"
"first-seen order), and return the cut; the table is emptied either way.  Only the keys kept\n"
"become Python objects.  A key or count of another type exports as export() does.");

static PyObject *
tally_settle(Tally *t, PyObject *args)
{
    const char *name;
    PyObject *counts, *fresh;
    Py_ssize_t cap;
    if (!tally_usable(t))
        return NULL;
    if (!PyArg_ParseTuple(args, "sO!O!n:settle", &name, &PyDict_Type, &counts, &PyDict_Type,
                          &fresh, &cap))
        return NULL;
    int which = single_table(name, "settle");
    if (which < 0)
        return NULL;
    if (cap < 1 || PyDict_GET_SIZE(fresh) != 0) {
        PyErr_SetString(PyExc_ValueError, "settle() needs cap >= 1 and an empty fresh dict");
        return NULL;
    }
    Table *tb = &t->tables[which];
    Py_ssize_t np = PyDict_GET_SIZE(counts), nt = tb->n;
    Py_ssize_t *match = PyMem_RawMalloc(sizeof(Py_ssize_t) * (size_t)(np ? np : 1));
    unsigned char *taken = PyMem_RawCalloc((size_t)(nt ? nt : 1), 1);
    long long *vals = NULL;
    PyObject *result = NULL;
    if (match == NULL || taken == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Which of the dict's keys the table holds too; anything but bytes -> int: export(). */
    Py_ssize_t pos = 0, k = 0, common = 0;
    PyObject *key, *val;
    int plain = 0;
    while (PyDict_Next(counts, &pos, &key, &val)) {
        int overflow = 0;
        if (!PyBytes_CheckExact(key) || !PyLong_CheckExact(val) ||
            (PyLong_AsLongLongAndOverflow(val, &overflow), overflow)) {
            plain = 1;
            break;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(key);
        const char *a = PyBytes_AS_STRING(key);
        Py_ssize_t at = table_find(tb, a, len, xxh64((const unsigned char *)a, (size_t)len, 0));
        match[k++] = at;
        if (at >= 0) {
            taken[at] = 1;
            common++;
        }
    }
    if (plain || np + nt - common <= cap) {
        if (table_flush(tb, counts) == 0) {
            result = Py_None;
            Py_INCREF(result);
        }
        goto done;
    }
    Py_ssize_t merged = np + nt - common, n = 0;
    vals = PyMem_RawMalloc(sizeof(long long) * (size_t)merged);
    if (vals == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    pos = 0;
    k = 0;
    while (PyDict_Next(counts, &pos, &key, &val)) {
        Py_ssize_t at = match[k++];
        vals[n++] = PyLong_AsLongLong(val) + (at >= 0 ? (long long)tb->entries[at].count : 0);
    }
    for (Py_ssize_t i = 0; i < nt; i++)
        if (!taken[i])
            vals[n++] = (long long)tb->entries[i].count;
    long long cut = select_desc(vals, merged, cap / 2);
    pos = 0;
    k = 0;
    while (PyDict_Next(counts, &pos, &key, &val)) {
        Py_ssize_t at = match[k++];
        long long v = PyLong_AsLongLong(val) + (at >= 0 ? (long long)tb->entries[at].count : 0);
        if (v > cut) {
            PyObject *num = PyLong_FromLongLong(v);
            int r = num ? PyDict_SetItem(fresh, key, num) : -1;
            Py_XDECREF(num);
            if (r < 0)
                goto done;
        }
    }
    for (Py_ssize_t i = 0; i < nt; i++) {
        Entry *e = &tb->entries[i];
        if (taken[i] || (long long)e->count <= cut)
            continue;
        PyObject *kb = PyBytes_FromStringAndSize(ekey(e), e->alen);
        PyObject *num = kb ? PyLong_FromSsize_t(e->count) : NULL;
        int r = num ? PyDict_SetItem(fresh, kb, num) : -1;
        Py_XDECREF(kb);
        Py_XDECREF(num);
        if (r < 0)
            goto done;
    }
    table_reset(tb);
    result = PyLong_FromLongLong(cut);
done:
    PyMem_RawFree(match);
    PyMem_RawFree(taken);
    PyMem_RawFree(vals);
    return result;
}

PyDoc_STRVAR(tally_top_doc,
"top(table, counts, n, cap) -> (top, size) or None\n\n"
"The n largest counts of `counts` (a dict of bytes keys to ints) and one table together, as\n"
"fast.top_items would rank them after export(), and how many distinct keys they hold, without\n"
"exporting anything: the table keeps its keys.  None if together they hold more than `cap`\n"
"keys (export() would have the caller prune first) or a key or count of another type.");

static PyObject *
tally_top(Tally *t, PyObject *args)
{
    const char *name;
    PyObject *counts, *key, *val, *result = NULL;
    Py_ssize_t n, cap, pos = 0, common = 0;
    if (!tally_usable(t))
        return NULL;
    if (!PyArg_ParseTuple(args, "sO!nn:top", &name, &PyDict_Type, &counts, &n, &cap))
        return NULL;
    int which = single_table(name, "top");
    if (which < 0)
        return NULL;
    Table *tb = &t->tables[which];
    Py_ssize_t nt = tb->n;
    unsigned char *taken = PyMem_RawCalloc((size_t)(nt ? nt : 1), 1);
    Best best = {NULL, 0, n > 0 ? n : 0};
    best.h = PyMem_Malloc(sizeof(Ranked) * (size_t)(best.cap ? best.cap : 1));
    if (taken == NULL || best.h == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    while (PyDict_Next(counts, &pos, &key, &val)) {
        Ranked item;
        if (!PyBytes_CheckExact(key))
            goto plain;
        Py_ssize_t len = PyBytes_GET_SIZE(key);
        const char *a = PyBytes_AS_STRING(key);
        Py_ssize_t at = table_find(tb, a, len, xxh64((const unsigned char *)a, (size_t)len, 0));
        if (at >= 0) {
            taken[at] = 1;
            common++;
        }
        if (!ranked_item(key, val, at >= 0 ? (long long)tb->entries[at].count : 0, &item))
            goto plain;
        best_offer(&best, item);
    }
    Py_ssize_t size = PyDict_GET_SIZE(counts) + nt - common;
    if (size > cap)
        goto plain;
    for (Py_ssize_t i = 0; i < nt; i++) {
        const Entry *e = &tb->entries[i];
        if (!taken[i])
            best_offer(&best, (Ranked){(long long)e->count, ekey(e), e->alen, NULL});
    }
    PyObject *list = best_list(&best);
    if (list != NULL)
        result = Py_BuildValue("(Nn)", list, size);
    goto done;
plain:
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_RawFree(taken);
    PyMem_Free(best.h);
    return result;
}

static PyObject *
tally_sizes(Tally *t, PyObject *unused)
{
    (void)unused;
    if (!t->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Tally is not initialised");
        return NULL;
    }
    PyObject *out = PyTuple_New(N_TABLES);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < N_TABLES; i++) {
        PyObject *n = PyLong_FromSsize_t(t->tables[i].n);
        if (n == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, n);
    }
    return out;
}

static PyMethodDef tally_methods[] = {
    {"count", (PyCFunction)tally_count, METH_VARARGS, tally_count_doc},
    {"count_many", (PyCFunction)tally_count_many, METH_VARARGS, tally_count_many_doc},
    {"merge", (PyCFunction)tally_merge, METH_O, tally_merge_doc},
    {"export", (PyCFunction)tally_export, METH_VARARGS, tally_export_doc},
    {"settle", (PyCFunction)tally_settle, METH_VARARGS, tally_settle_doc},
    {"top", (PyCFunction)tally_top, METH_VARARGS, tally_top_doc},
    {"sizes", (PyCFunction)tally_sizes, METH_NOARGS,
     "sizes() -> the number of distinct keys held per table (clients … seconds)."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(tally_doc,
"Tally(clients, nets, others, paths, agents, methods, seconds, hll, v6nets=False)\n\n"
"Count tables kept in C across chunks; each flag says whether that field is counted.  With\n"
"v6nets, an IPv6 client whose first three hextets are written out counts in nets as its /48\n"
"(b\"2001:db8:7::/48\", as subnet_of makes it), not in others.");

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "opsconsole.stats._fastcount.Tally",
    .tp_basicsize = sizeof(Tally),
    .tp_dealloc = (destructor)tally_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = tally_doc,
    .tp_methods = tally_methods,
    .tp_init = (initproc)tally_init,
    .tp_new = PyType_GenericNew,
};

PyDoc_STRVAR(top_items_doc,
"top_items(counts, n) -> list of (key, count), or None\n\n"
"The n largest counts of a dict of bytes keys to ints, ties broken by key, best first: what\n"
"sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n] gives, in one pass and without a\n"
"list of every item.  None if a key is not bytes or a count not an int of 64 bits (the caller\n"
"sorts those itself).");

static PyObject *
top_items(PyObject *self, PyObject *args)
{
    PyObject *counts, *key, *val;
    Py_ssize_t n, pos = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!n:top_items", &PyDict_Type, &counts, &n))
        return NULL;
    if (n <= 0)
        return PyList_New(0);
    Best best = {NULL, 0, n < PyDict_GET_SIZE(counts) ? n : PyDict_GET_SIZE(counts)};
    best.h = PyMem_Malloc(sizeof(Ranked) * (size_t)(best.cap ? best.cap : 1));
    if (best.h == NULL)
        return PyErr_NoMemory();
    while (PyDict_Next(counts, &pos, &key, &val)) {
        Ranked item;
        if (!ranked_item(key, val, 0, &item)) {
            PyMem_Free(best.h);
            Py_RETURN_NONE;
        }
        best_offer(&best, item);
    }
    PyObject *out = best_list(&best);
    PyMem_Free(best.h);
    return out;
}

PyDoc_STRVAR(hll_add_doc,
"hll_add(hll, keys) -> None\n\n"
"Add every bytes-like key of the iterable to the HyperLogLog registers (a writable buffer of\n"
"16384 bytes), hashing exactly as count_lines does: for clients counted by another path.");

static PyObject *
hll_add(PyObject *self, PyObject *args)
{
    PyObject *hll_obj, *keys, *it, *key;
    Py_buffer regs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO:hll_add", &hll_obj, &keys))
        return NULL;
    if (hll_obj == Py_None) {
        PyErr_SetString(PyExc_TypeError, "hll must be a writable buffer, not None");
        return NULL;
    }
    if (get_registers(hll_obj, &regs) < 0)
        return NULL;
    it = PyObject_GetIter(keys);
    if (it == NULL) {
        PyBuffer_Release(&regs);
        return NULL;
    }
    while ((key = PyIter_Next(it)) != NULL) {
        Py_buffer kb;
        if (PyObject_GetBuffer(key, &kb, PyBUF_SIMPLE) < 0) {
            Py_DECREF(key);
            break;
        }
        hll_update(regs.buf, xxh64(kb.buf, (size_t)kb.len, 0));
        PyBuffer_Release(&kb);
        Py_DECREF(key);
    }
    Py_DECREF(it);
    PyBuffer_Release(&regs);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(xxh64_doc,
"xxh64(data, seed=0) -> int\n\n"
"XXH64 of a bytes-like object: the hash count_lines feeds the HyperLogLog with.");

static PyObject *
py_xxh64(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "seed", NULL};
    Py_buffer data;
    unsigned long long seed = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|K:xxh64", kwlist, &data, &seed))
        return NULL;
    uint64_t h = xxh64(data.buf, (size_t)data.len, (uint64_t)seed);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef methods[] = {
    {"count_lines", (PyCFunction)(void (*)(void))count_lines, METH_VARARGS | METH_KEYWORDS,
     count_lines_doc},
    {"hll_add", hll_add, METH_VARARGS, hll_add_doc},
    {"top_items", top_items, METH_VARARGS, top_items_doc},
    {"xxh64", (PyCFunction)(void (*)(void))py_xxh64, METH_VARARGS | METH_KEYWORDS, xxh64_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *m)
{
    init_classes();
    if (PyType_Ready(&TallyType) < 0)
        return -1;
    Py_INCREF(&TallyType);
    if (PyModule_AddObject(m, "Tally", (PyObject *)&TallyType) < 0) {
        Py_DECREF(&TallyType);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "HLL_P", HLL_P) < 0 ||
        PyModule_AddIntConstant(m, "HLL_REGISTERS", HLL_REGISTERS) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
#ifdef Py_mod_gil
    /* Mutates caller dicts without per-object locking: keep the GIL on free-threaded builds. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "opsconsole.stats._fastcount",
    .m_doc = "Parse + count nginx access-log chunks in C (see opsconsole.stats.fast).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__fastcount(void)
{
    return PyModuleDef_Init(&module);
}
