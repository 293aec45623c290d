/*
 * _fastcount: parse + count a chunk of an nginx `combined` access log in one C pass.
 *
 * Optional accelerator for the history mode of opsconsole.stats.traffic (`opsconsole stats
 * --since all`).  The pure-Python path (one bytes-regex `findall` per chunk, then
 * `Counter.update` per field) stays the reference and the fallback; opsconsole/stats/fast.py is
 * the typed wrapper and tests/test_fastcount.py checks that both give identical results.
 *
 * What a "parsed line" is comes from the regex compile_format("combined") builds (logformat.py):
 *
 *   ^((\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|[^\s"]+) - [^\s]* \[(TIME)\] "([A-Za-z]*) ?(WORD)BODY"
 *    (\d{3}) [^\s]* "BODY" "(BODY)"(?:[ \t\r][^\n]*)?$            (re.MULTILINE, bytes)
 *
 *   TIME = \d\d/(?:Jan|Feb|...|Dec)/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}
 *   BODY = [^"\\\n]*(?:\\.[^"\\\n]*)*      WORD = the same without spaces
 *
 * Why a hand-written scanner can reproduce it exactly, backtracking included: no part of the
 * regex can match '\n', so every match lies inside one line and starts at its first byte; and
 * every field has exactly one way to end:
 *   - a greedy run of a class that cannot contain the byte required after it ([^\s"]+ then ' ',
 *     [^\s]* then ' ', \d{1,3} then '.' or ' ') cannot give back bytes usefully: a shorter run
 *     is followed by a byte of the class, never by the delimiter;
 *   - BODY tokenises left to right (a backslash always takes the next byte, except '\n'), so
 *     its only possible end is the first token boundary not followed by a consumable byte; the
 *     closing quote must sit exactly there;
 *   - in the request, METHOD/' '/WORD/BODY together match exactly what BODY alone matches, so the
 *     request's end is fixed and the first (greedy) split the engine tries always succeeds:
 *     METHOD = the leading letters, one optional space, WORD = the next space-free word;
 *   - CLIENT's IPv4 alternative, when it fits, ends where the [^\s"]+ alternative would end, so
 *     if the rest of the line fails after it, it fails after the fallback too.  Hence: client =
 *     the leading [^\s"]+ run; net = its first three octets iff the whole run is
 *     d{1,3}.d{1,3}.d{1,3}.d{1,3}, else empty (the 2nd alternative leaves group 2 empty).
 * `\s` in a bytes pattern is [ \t\n\r\f\v]; `\d` and [A-Za-z] are ASCII only.
 *
 * Counting: each field goes first into a small per-call hash table whose keys point into the
 * chunk (no Python objects per line); the table is flushed into the caller's dicts once per
 * distinct key (and whenever it grows past TABLE_MAX entries), in first-seen order, so new keys
 * enter the dicts in the same order Counter.update(iterable) would insert them.  That cuts the
 * per-line cost from ~7 bytes objects + dict updates to a few hash probes: agents, methods,
 * seconds and busy nets repeat a lot within a chunk.
 *
 * Distinct clients: a HyperLogLog with 2**14 one-byte registers kept in a caller's bytearray.
 * The hash is XXH64 (seed 0) of the client bytes; register index = its low 14 bits, value = 1 +
 * number of trailing zero bits of the remaining 50 bits (51 if they are all zero), the layout
 * Redis uses, so fast.hll_estimate() can apply Ertl's improved estimator.
 *
 * The GIL is held throughout (the work per chunk is short and dict updates need it anyway).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define HLL_P 14
#define HLL_REGISTERS (1 << HLL_P)
#define HLL_Q (64 - HLL_P)

/* Entries a per-field table may hold before it is flushed to its dict and emptied: bounds the
 * C-side memory of a huge chunk (~3 MB per table) without costing anything on normal chunks. */
#define TABLE_MAX (1 << 16)

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

/* ------------------------------------------------------------------ per-call count tables */

/* A key is one span of the chunk, or two (the seconds table: time, status).  Keys point into
 * the caller's buffer, which stays exported (and so unresizable) for the whole call. */
typedef struct {
    const char *a, *b;
    Py_ssize_t alen, blen;
    uint64_t hash;
    Py_ssize_t count;
} Entry;

/* Compact, insertion-ordered hash table (like CPython's dict): entries in first-seen order,
 * `index` maps a hash slot (linear probing, load <= 1/2) to an entry number or -1. */
typedef struct {
    PyObject *dict;   /* the caller's dict (borrowed), NULL: don't count (None was passed) */
    int pair;         /* keys are (a, b) tuples */
    int update_hll;   /* new keys also go into the HLL registers */
    Entry *entries;
    Py_ssize_t n, cap;
    int32_t *index;
    size_t mask;
} Table;

static int
table_init(Table *t, PyObject *dict, int pair)
{
    memset(t, 0, sizeof *t);
    t->dict = dict;
    t->pair = pair;
    t->cap = 64;
    t->mask = 127;
    t->entries = PyMem_Malloc(sizeof(Entry) * (size_t)t->cap);
    t->index = PyMem_Malloc(sizeof(int32_t) * (t->mask + 1));
    if (t->entries == NULL || t->index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(t->index, 0xff, sizeof(int32_t) * (t->mask + 1));
    return 0;
}

static void
table_free(Table *t)
{
    PyMem_Free(t->entries);
    PyMem_Free(t->index);
    t->entries = NULL;
    t->index = NULL;
}

/* Double the entry array and the slot array (rehashing from the stored hashes). */
static int
table_grow(Table *t)
{
    Py_ssize_t cap = t->cap * 2;
    size_t slots = (size_t)cap * 2, mask = slots - 1;
    Entry *entries = PyMem_Realloc(t->entries, sizeof(Entry) * (size_t)cap);
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->entries = entries;
    int32_t *index = PyMem_Malloc(sizeof(int32_t) * slots);
    if (index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(index, 0xff, sizeof(int32_t) * slots);
    for (Py_ssize_t i = 0; i < t->n; i++) {
        size_t s = (size_t)entries[i].hash & mask;
        while (index[s] >= 0)
            s = (s + 1) & mask;
        index[s] = (int32_t)i;
    }
    PyMem_Free(t->index);
    t->index = index;
    t->mask = mask;
    t->cap = cap;
    return 0;
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

/* Move every entry's count into the dict and empty the table. */
static int
table_flush(Table *t)
{
    int rc = 0;
    if (t->dict != NULL) {
        for (Py_ssize_t i = 0; i < t->n; i++) {
            Entry *e = &t->entries[i];
            PyObject *key;
            if (t->pair) {
                PyObject *a = PyBytes_FromStringAndSize(e->a, e->alen);
                PyObject *b = a ? PyBytes_FromStringAndSize(e->b, e->blen) : NULL;
                key = b ? PyTuple_Pack(2, a, b) : NULL;
                Py_XDECREF(a);
                Py_XDECREF(b);
            }
            else {
                key = PyBytes_FromStringAndSize(e->a, e->alen);
            }
            if (key == NULL) {
                rc = -1;
                break;
            }
            int r = dict_add(t->dict, key, e->count);
            Py_DECREF(key);
            if (r < 0) {
                rc = -1;
                break;
            }
        }
    }
    t->n = 0;
    memset(t->index, 0xff, sizeof(int32_t) * (t->mask + 1));
    return rc;
}

/* Count one occurrence of key (a, alen)(b, blen) with the given hash.  Returns 1 if the key was
 * new to the table, 0 if it was already there, -1 on error. */
static int
table_add(Table *t, const char *a, Py_ssize_t alen, const char *b, Py_ssize_t blen, uint64_t hash)
{
    size_t s = (size_t)hash & t->mask;
    int32_t i;
    while ((i = t->index[s]) >= 0) {
        Entry *e = &t->entries[i];
        if (e->hash == hash && e->alen == alen && e->blen == blen &&
            memcmp(e->a, a, (size_t)alen) == 0 && (blen == 0 || memcmp(e->b, b, (size_t)blen) == 0)) {
            e->count++;
            return 0;
        }
        s = (s + 1) & t->mask;
    }
    if (t->n == t->cap) {
        /* Full: grow while small, else hand the counts over to the dict and start again. */
        if (t->cap < TABLE_MAX) {
            if (table_grow(t) < 0)
                return -1;
        }
        else if (table_flush(t) < 0) {
            return -1;
        }
        s = (size_t)hash & t->mask;
        while (t->index[s] >= 0)
            s = (s + 1) & t->mask;
    }
    Entry *e = &t->entries[t->n];
    e->a = a;
    e->alen = alen;
    e->b = b;
    e->blen = blen;
    e->hash = hash;
    e->count = 1;
    t->index[s] = (int32_t)t->n;
    t->n++;
    return 1;
}

/* ------------------------------------------------------------------ the line scanner */

typedef struct {
    const char *client, *time, *method, *path, *status, *agent;
    Py_ssize_t client_len, net_len, method_len, path_len, agent_len;
} Fields;

/* Length of "a.b.c" if the whole client is d{1,3}.d{1,3}.d{1,3}.d{1,3}, else 0. */
static Py_ssize_t
ipv4_net_len(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0, net = 0;
    for (int octet = 0; octet < 4; octet++) {
        Py_ssize_t start = i;
        /* Look at up to 4 digits: a 4-digit run defeats \d{1,3} (its next byte must be '.'
         * or, for the last octet, the ' ' after the client). */
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

static const char MONTHS[12][3] = {
    {'J', 'a', 'n'}, {'F', 'e', 'b'}, {'M', 'a', 'r'}, {'A', 'p', 'r'},
    {'M', 'a', 'y'}, {'J', 'u', 'n'}, {'J', 'u', 'l'}, {'A', 'u', 'g'},
    {'S', 'e', 'p'}, {'O', 'c', 't'}, {'N', 'o', 'v'}, {'D', 'e', 'c'},
};

#define TIME_LEN 26 /* dd/Mon/yyyy:hh:mm:ss +zzzz */

/* Caller guarantees TIME_LEN readable bytes. */
static int
is_time(const char *t)
{
    static const char shape[TIME_LEN + 1] = "99/MMM/9999:99:99:99 S9999";
    for (int i = 0; i < TIME_LEN; i++) {
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
    for (int m = 0; m < 12; m++)
        if (memcmp(t + 3, MONTHS[m], 3) == 0)
            return 1;
    return 0;
}

/* End of a quoted BODY starting at p: the first token boundary whose next byte cannot be
 * consumed ('"', or a backslash with nothing after it on the line).  `e` is the line end, so
 * "any byte but \n" after a backslash is simply "a byte before e". */
static inline const char *
scan_body(const char *p, const char *e)
{
    while (p < e) {
        char c = *p;
        if (c == '"')
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

/* Match one line [p, e) (e = its '\n' or the end of the chunk) against the combined regex. */
static int
parse_line(const char *p, const char *e, Fields *f)
{
    const char *q = p;

    /* CLIENT: the leading [^\s"]+ run, then " - ". */
    while (q < e && !IS_SPACE(*q) && *q != '"')
        q++;
    if (q == p || e - q < 3 || q[0] != ' ' || q[1] != '-' || q[2] != ' ')
        return 0;
    f->client = p;
    f->client_len = q - p;
    f->net_len = ipv4_net_len(p, f->client_len);
    q += 3;

    /* USER: [^\s]*, then " [". */
    while (q < e && !IS_SPACE(*q))
        q++;
    if (e - q < 2 || q[0] != ' ' || q[1] != '[')
        return 0;
    q += 2;

    /* [TIME] then ' "'. */
    if (e - q < TIME_LEN + 3 || !is_time(q) || q[TIME_LEN] != ']' || q[TIME_LEN + 1] != ' ' ||
        q[TIME_LEN + 2] != '"')
        return 0;
    f->time = q;
    q += TIME_LEN + 3;

    /* "REQUEST": METHOD = leading letters, one optional space, PATH = next word, rest. */
    f->method = q;
    while (q < e && IS_ALPHA(*q))
        q++;
    f->method_len = q - f->method;
    if (q < e && *q == ' ')
        q++;
    f->path = q;
    q = scan_word(q, e);
    f->path_len = q - f->path;
    q = scan_body(q, e);
    if (q == e || *q != '"') /* the line ended, or a lone backslash ended it */
        return 0;
    q++;

    /* ' ' STATUS ' ' */
    if (e - q < 5 || q[0] != ' ' || !IS_DIGIT(q[1]) || !IS_DIGIT(q[2]) || !IS_DIGIT(q[3]) ||
        q[4] != ' ')
        return 0;
    f->status = q + 1;
    q += 5;

    /* BYTES: [^\s]*, then ' "'. */
    while (q < e && !IS_SPACE(*q))
        q++;
    if (e - q < 2 || q[0] != ' ' || q[1] != '"')
        return 0;
    q += 2;

    /* "REFERER" "AGENT" */
    q = scan_body(q, e);
    if (e - q < 3 || q[0] != '"' || q[1] != ' ' || q[2] != '"')
        return 0;
    q += 3;
    f->agent = q;
    q = scan_body(q, e);
    if (q == e || *q != '"')
        return 0;
    f->agent_len = q - f->agent;
    q++;

    /* (?:[ \t\r][^\n]*)?$ */
    return q == e || *q == ' ' || *q == '\t' || *q == '\r';
}

/* ------------------------------------------------------------------ Python API */

enum { T_CLIENTS, T_NETS, T_OTHERS, T_PATHS, T_AGENTS, T_METHODS, T_SECONDS, N_TABLES };

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

PyDoc_STRVAR(count_combined_doc,
"count_combined(chunk, clients, nets, others, paths, agents, methods, seconds, hll)\n"
"    -> (lines, parsed)\n\n"
"Parse a chunk of complete nginx `combined` log lines and add the fields of every parsed line\n"
"to the given dicts in place, as Counter.update would (keys bytes, values ints):\n"
"clients (the client), nets (first three octets of IPv4 clients), others (the client, when it\n"
"is not IPv4), paths, agents, methods, seconds (keyed (time, status)).  Any dict may be None.\n"
"hll: a writable buffer of 16384 HyperLogLog registers updated with XXH64 of every parsed\n"
"client, or None.  lines counts newline-terminated lines plus a final piece without newline\n"
"(blank lines included); parsed counts the lines the combined regex matches.");

static PyObject *
count_combined(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"chunk",  "clients", "nets",    "others", "paths",
                             "agents", "methods", "seconds", "hll",    NULL};
    static const char *names[N_TABLES] = {"clients", "nets",    "others", "paths",
                                          "agents",  "methods", "seconds"};
    Py_buffer chunk;
    PyObject *objs[N_TABLES], *hll_obj;
    PyObject *dicts[N_TABLES];
    Py_buffer regs;
    Table tables[N_TABLES];
    int ntables = 0;
    PyObject *result = NULL;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*OOOOOOOO:count_combined", kwlist, &chunk,
                                     &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                                     &objs[6], &hll_obj))
        return NULL;
    for (int i = 0; i < N_TABLES; i++) {
        if (dict_or_none(objs[i], names[i], &dicts[i]) < 0) {
            PyBuffer_Release(&chunk);
            return NULL;
        }
    }
    if (get_registers(hll_obj, &regs) < 0) {
        PyBuffer_Release(&chunk);
        return NULL;
    }
    unsigned char *registers = regs.buf;
    for (; ntables < N_TABLES; ntables++) {
        if (table_init(&tables[ntables], dicts[ntables], ntables == T_SECONDS) < 0) {
            ntables++; /* free the partly initialised one too */
            goto done;
        }
    }
    /* Skip the per-line work of a field nobody asked for (clients still feed the HLL). */
    int want[N_TABLES];
    for (int i = 0; i < N_TABLES; i++)
        want[i] = dicts[i] != NULL;
    want[T_CLIENTS] |= registers != NULL;
    int want_client_hash = want[T_CLIENTS] || want[T_OTHERS];

    const char *p = chunk.buf, *end = p + chunk.len;
    Py_ssize_t lines = 0, parsed = 0;
    Fields f;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        lines++;
        if (parse_line(p, e, &f)) {
            parsed++;
            uint64_t hc = want_client_hash ? xxh64((const unsigned char *)f.client,
                                                   (size_t)f.client_len, 0)
                                           : 0;
            int r;
            if (want[T_CLIENTS]) {
                r = table_add(&tables[T_CLIENTS], f.client, f.client_len, NULL, 0, hc);
                if (r < 0)
                    goto done;
                if (r == 1 && registers != NULL)
                    hll_update(registers, hc);
            }
            if (f.net_len > 0) {
                if (want[T_NETS] &&
                    table_add(&tables[T_NETS], f.client, f.net_len, NULL, 0,
                              xxh64((const unsigned char *)f.client, (size_t)f.net_len, 0)) < 0)
                    goto done;
            }
            else if (want[T_OTHERS] &&
                     table_add(&tables[T_OTHERS], f.client, f.client_len, NULL, 0, hc) < 0) {
                goto done;
            }
            if (want[T_PATHS] &&
                table_add(&tables[T_PATHS], f.path, f.path_len, NULL, 0,
                          xxh64((const unsigned char *)f.path, (size_t)f.path_len, 0)) < 0)
                goto done;
            if (want[T_AGENTS] &&
                table_add(&tables[T_AGENTS], f.agent, f.agent_len, NULL, 0,
                          xxh64((const unsigned char *)f.agent, (size_t)f.agent_len, 0)) < 0)
                goto done;
            if (want[T_METHODS] &&
                table_add(&tables[T_METHODS], f.method, f.method_len, NULL, 0,
                          xxh64((const unsigned char *)f.method, (size_t)f.method_len, 0)) < 0)
                goto done;
            if (want[T_SECONDS]) {
                /* The status digits seed the time's hash: one hash for the pair. */
                uint64_t seed = (uint64_t)(unsigned char)f.status[0] << 16 |
                                (uint64_t)(unsigned char)f.status[1] << 8 |
                                (uint64_t)(unsigned char)f.status[2];
                if (table_add(&tables[T_SECONDS], f.time, TIME_LEN, f.status, 3,
                              xxh64((const unsigned char *)f.time, TIME_LEN, seed)) < 0)
                    goto done;
            }
        }
        p = nl ? nl + 1 : end;
    }
    for (int i = 0; i < N_TABLES; i++)
        if (table_flush(&tables[i]) < 0)
            goto done;
    result = Py_BuildValue("(nn)", lines, parsed);

done:
    /* On error the dicts keep whatever was flushed before it. */
    for (int i = 0; i < ntables; i++)
        table_free(&tables[i]);
    if (regs.obj != NULL)
        PyBuffer_Release(&regs);
    PyBuffer_Release(&chunk);
    return result;
}

PyDoc_STRVAR(hll_add_doc,
"hll_add(hll, keys) -> None\n\n"
"Add every bytes-like key of the iterable to the HyperLogLog registers (a writable buffer of\n"
"16384 bytes), hashing exactly as count_combined does: for clients counted by another path.");

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
"XXH64 of a bytes-like object: the hash count_combined feeds the HyperLogLog with.");

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
    {"count_combined", (PyCFunction)(void (*)(void))count_combined, METH_VARARGS | METH_KEYWORDS,
     count_combined_doc},
    {"hll_add", hll_add, METH_VARARGS, hll_add_doc},
    {"xxh64", (PyCFunction)(void (*)(void))py_xxh64, METH_VARARGS | METH_KEYWORDS, xxh64_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *m)
{
    init_classes();
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
    .m_doc = "Parse + count nginx `combined` log chunks in C (see opsconsole.stats.fast).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__fastcount(void)
{
    return PyModuleDef_Init(&module);
}
