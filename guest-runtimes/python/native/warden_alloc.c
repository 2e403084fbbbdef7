/*
 * A small-object allocator for the Python guest's interpreter.
 *
 * componentize-py's CPython is built without pymalloc, so every object is a dlmalloc call in
 * another core module (libc's): a cross-module call and dlmalloc's bin search per object, a
 * fifth of the time of allocation-heavy code. Importing this module when the guest is built
 * installs, for the MEM and OBJ domains, size-class free lists in 16 KiB blocks, the way
 * pymalloc would: a pop or a push per object, inside this module.
 *
 * It wraps the allocator it replaces, as CPython requires of one installed after
 * initialization: requests over SMALL_MAX bytes go to it, and a pointer that is not in one of
 * this allocator's blocks (allocated before the switch, or large) is freed and resized by it.
 * The fast paths keep no counts. Only when libc refuses memory does reclaim() look for blocks
 * whose objects are all free: those serve any class again, and chunks of them go back to libc,
 * so that memory freed as one size of object is not lost to every other size near the cap.
 *
 * Built without Python.h (componentize-py ships no headers): the few declarations below are
 * CPython's stable ABI on wasm32.
 */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} PyMemAllocatorEx;

enum { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ };

typedef struct {
    intptr_t ob_refcnt;
    void *ob_type;
} PyObject;

typedef struct {
    PyObject ob_base;
    PyObject *(*m_init)(void);
    intptr_t m_index;
    PyObject *m_copy;
} PyModuleDef_Base;

typedef struct {
    const char *ml_name;
    PyObject *(*ml_meth)(PyObject *self, PyObject *args);
    int ml_flags;
    const char *ml_doc;
} PyMethodDef;

#define METH_NOARGS 0x0004

typedef struct {
    PyModuleDef_Base m_base;
    const char *m_name;
    const char *m_doc;
    intptr_t m_size;
    PyMethodDef *m_methods;
    void *m_slots;
    void *m_traverse;
    void *m_clear;
    void *m_free;
} PyModuleDef;

extern void PyMem_GetAllocator(int domain, PyMemAllocatorEx *allocator);
extern void PyMem_SetAllocator(int domain, PyMemAllocatorEx *allocator);
extern PyObject *PyModuleDef_Init(PyModuleDef *def);
extern PyObject *PyLong_FromSize_t(size_t value);
extern void *aligned_alloc(size_t alignment, size_t size);
extern void free(void *ptr);
extern void *memcpy(void *dest, const void *src, size_t n);
extern void *memset(void *dest, int c, size_t n);

#define GRAIN_SHIFT 3
#define SMALL_MAX 512
#define CLASSES (SMALL_MAX >> GRAIN_SHIFT)
#define BLOCK_SHIFT 14
#define BLOCK_SIZE ((size_t)1 << BLOCK_SHIFT)
/* Blocks come from libc 16 at a time (256 KiB): chunk c's blocks are block_list[c * 16 ..]. */
#define BLOCKS_PER_CHUNK 16
#define EMPTY 0
/* A returned chunk's slots: never a block's address, which is BLOCK_SIZE-aligned. */
#define NO_BLOCK ((char *)1)

/* At the start of each block, so that a pointer's block (its address rounded down) says which
 * class it holds. A foreign pointer's rounded-down address holds anything, so the header counts
 * only if the list of blocks has this block at `index`: pymalloc's address_in_range. Eight
 * bytes, so the objects after it stay 8-aligned. */
typedef struct {
    uint32_t index;
    uint16_t cls;
    /* Only meaningful during reclaim(): how many of the block's objects are on a free list. */
    uint16_t free_count;
} BlockHeader;

/* Every block of every chunk held, in chunk order; a returned chunk leaves NO_BLOCK slots. */
static char **block_list;
static size_t blocks_len;
static size_t blocks_cap;
static size_t blocks_in_use;
/* Blocks that hold no class, linked through their first object slot. */
static char *empty_blocks;
static void *free_list[CLASSES + 1];
static char *bump[CLASSES + 1];
static char *bump_end[CLASSES + 1];
/* What the MEM and OBJ domains had before (the same raw malloc in this build); large requests
 * and foreign pointers go there. */
static PyMemAllocatorEx fallback;

static inline BlockHeader *header_of(const void *ptr) {
    return (BlockHeader *)((uintptr_t)ptr & ~(uintptr_t)(BLOCK_SIZE - 1));
}

static inline unsigned class_of_pointer(const void *ptr) {
    const BlockHeader *header = header_of(ptr);
    uint32_t index = header->index;
    if (index < blocks_len && block_list[index] == (const char *)header)
        return header->cls;
    return EMPTY;
}

static void push_empty(char *block) {
    ((BlockHeader *)block)->cls = EMPTY;
    *(char **)(block + sizeof(BlockHeader)) = empty_blocks;
    empty_blocks = block;
}

/* Takes a chunk from libc and files its blocks as empty, in the first run of free slots. */
static int add_chunk(void) {
    size_t first = 0;
    while (first < blocks_len && block_list[first] != NO_BLOCK)
        first += BLOCKS_PER_CHUNK;
    if (first + BLOCKS_PER_CHUNK > blocks_cap) {
        size_t cap = blocks_cap ? blocks_cap * 2 : 1024;
        char **grown = fallback.realloc(fallback.ctx, block_list, cap * sizeof *block_list);
        if (grown == NULL)
            return 0;
        block_list = grown;
        blocks_cap = cap;
    }
    char *chunk = aligned_alloc(BLOCK_SIZE, BLOCK_SIZE * BLOCKS_PER_CHUNK);
    if (chunk == NULL)
        return 0;
    if (first == blocks_len)
        blocks_len += BLOCKS_PER_CHUNK;
    for (size_t i = BLOCKS_PER_CHUNK; i-- > 0;) {
        char *block = chunk + i * BLOCK_SIZE;
        ((BlockHeader *)block)->index = (uint32_t)(first + i);
        block_list[first + i] = block;
        push_empty(block);
    }
    return 1;
}

/* Called only when memory runs short, so that the fast paths keep no counts: finds the blocks
 * whose every object is free, takes their objects off the free lists, and returns the chunks
 * that are then wholly empty to libc. The other empty blocks serve any class from then on.
 * Returns whether anything was reclaimed. */
static int reclaim(void) {
    for (size_t i = 0; i < blocks_len; i++)
        if (block_list[i] != NO_BLOCK)
            ((BlockHeader *)block_list[i])->free_count = 0;
    for (unsigned cls = 1; cls <= CLASSES; cls++)
        for (void *p = free_list[cls]; p != NULL; p = *(void **)p)
            header_of(p)->free_count++;

    size_t reclaimed = 0;
    for (size_t i = 0; i < blocks_len; i++) {
        char *block = block_list[i];
        if (block == NO_BLOCK)
            continue;
        BlockHeader *header = (BlockHeader *)block;
        unsigned cls = header->cls;
        if (cls == EMPTY)
            continue;
        size_t size = (size_t)cls << GRAIN_SHIFT;
        /* The class's bump block has handed out objects only up to bump[cls]. */
        int is_bump_block = bump_end[cls] == block + BLOCK_SIZE;
        char *carved_end = is_bump_block ? bump[cls] : block + BLOCK_SIZE;
        size_t carved = (size_t)(carved_end - block - sizeof(BlockHeader)) / size;
        if (header->free_count == carved) {
            header->cls = EMPTY;
            if (is_bump_block)
                bump[cls] = bump_end[cls] = NULL;
            blocks_in_use--;
            reclaimed++;
        }
    }
    if (reclaimed == 0)
        return 0;

    for (unsigned cls = 1; cls <= CLASSES; cls++) {
        void *kept = NULL;
        for (void *p = free_list[cls], *next; p != NULL; p = next) {
            next = *(void **)p;
            if (header_of(p)->cls != EMPTY) {
                *(void **)p = kept;
                kept = p;
            }
        }
        free_list[cls] = kept;
    }

    empty_blocks = NULL;
    for (size_t first = 0; first < blocks_len; first += BLOCKS_PER_CHUNK) {
        char *chunk = block_list[first];
        if (chunk == NO_BLOCK)
            continue;
        size_t empty = 0;
        for (size_t i = 0; i < BLOCKS_PER_CHUNK; i++)
            empty += ((BlockHeader *)block_list[first + i])->cls == EMPTY;
        if (empty == BLOCKS_PER_CHUNK) {
            for (size_t i = 0; i < BLOCKS_PER_CHUNK; i++)
                block_list[first + i] = NO_BLOCK;
            free(chunk);
            continue;
        }
        for (size_t i = BLOCKS_PER_CHUNK; i-- > 0;)
            if (((BlockHeader *)block_list[first + i])->cls == EMPTY)
                push_empty(block_list[first + i]);
    }
    return 1;
}

static void *refill(unsigned cls) {
    size_t size = (size_t)cls << GRAIN_SHIFT;
    if (bump[cls] + size > bump_end[cls]) {
        if (empty_blocks == NULL && !add_chunk()) {
            /* libc has no chunk to spare: take a block reclaim() emptied, or a chunk from the
             * memory it gave back to libc. */
            if (!reclaim() || (empty_blocks == NULL && !add_chunk()))
                return NULL;
        }
        char *block = empty_blocks;
        empty_blocks = *(char **)(block + sizeof(BlockHeader));
        ((BlockHeader *)block)->cls = (uint16_t)cls;
        blocks_in_use++;
        bump[cls] = block + sizeof(BlockHeader);
        bump_end[cls] = block + BLOCK_SIZE;
    }
    void *ptr = bump[cls];
    bump[cls] += size;
    return ptr;
}

/* A large request that libc refused is retried once after giving back what reclaim() can. */
static void *large_malloc(size_t size) {
    void *ptr = fallback.malloc(fallback.ctx, size);
    if (ptr == NULL && reclaim())
        ptr = fallback.malloc(fallback.ctx, size);
    return ptr;
}

static void *small_malloc(void *ctx, size_t size) {
    (void)ctx;
    if (size > SMALL_MAX)
        return large_malloc(size);
    unsigned cls = size == 0 ? 1 : (unsigned)((size + (1 << GRAIN_SHIFT) - 1) >> GRAIN_SHIFT);
    void *ptr = free_list[cls];
    if (ptr != NULL) {
        free_list[cls] = *(void **)ptr;
        return ptr;
    }
    ptr = refill(cls);
    /* No block to be had: libc may still have room for this one object (such as the
     * MemoryError that reports the shortage); small_free() hands it back to libc. */
    return ptr != NULL ? ptr : fallback.malloc(fallback.ctx, size);
}

static void small_free(void *ctx, void *ptr) {
    (void)ctx;
    if (ptr == NULL)
        return;
    unsigned cls = class_of_pointer(ptr);
    if (cls == EMPTY) {
        fallback.free(fallback.ctx, ptr);
        return;
    }
    *(void **)ptr = free_list[cls];
    free_list[cls] = ptr;
}

static void *small_calloc(void *ctx, size_t nelem, size_t elsize) {
    if (elsize != 0 && nelem > SIZE_MAX / elsize)
        return NULL;
    size_t size = nelem * elsize;
    if (size > SMALL_MAX) {
        void *ptr = fallback.calloc(fallback.ctx, nelem, elsize);
        if (ptr == NULL && reclaim())
            ptr = fallback.calloc(fallback.ctx, nelem, elsize);
        return ptr;
    }
    void *ptr = small_malloc(ctx, size);
    if (ptr != NULL)
        memset(ptr, 0, size);
    return ptr;
}

static void *small_realloc(void *ctx, void *ptr, size_t size) {
    if (ptr == NULL)
        return small_malloc(ctx, size);
    unsigned cls = class_of_pointer(ptr);
    if (cls == EMPTY) {
        void *resized = fallback.realloc(fallback.ctx, ptr, size);
        if (resized == NULL && size != 0 && reclaim())
            resized = fallback.realloc(fallback.ctx, ptr, size);
        return resized;
    }
    size_t old_size = (size_t)cls << GRAIN_SHIFT;
    /* Same class: nothing to move. Shrinking within a quarter keeps it too, as pymalloc does. */
    if (size <= old_size && size > old_size - (old_size >> 2))
        return ptr;
    void *moved = small_malloc(ctx, size);
    if (moved == NULL)
        return NULL;
    memcpy(moved, ptr, size < old_size ? size : old_size);
    small_free(ctx, ptr);
    return moved;
}

/* How many blocks hold a class: tests read it to see that the allocator is the one in use and
 * that reclaim() empties blocks. */
static PyObject *blocks(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyLong_FromSize_t(blocks_in_use);
}

static PyMethodDef methods[] = {
    {"blocks", blocks, METH_NOARGS, "The number of 16 KiB blocks that hold objects of a size class."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef module_def = {
    /* Statically allocated and immortal (CPython's 32-bit _Py_STATIC_IMMORTAL_INITIAL_REFCNT). */
    .m_base = {.ob_base = {.ob_refcnt = (intptr_t)(7L << 28)}},
    .m_name = "warden_alloc",
    .m_doc = "Size-class free lists for the MEM and OBJ domains (installed on import).",
    .m_methods = methods,
};

__attribute__((visibility("default"))) PyObject *PyInit_warden_alloc(void) {
    static int installed;
    if (!installed) {
        PyMemAllocatorEx previous, small = {NULL, small_malloc, small_calloc, small_realloc, small_free};
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &fallback);
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &previous);
        /* Both domains wrap one allocator here; if they did not, one fallback could not serve
         * both, so leave the interpreter as it is. */
        if (previous.malloc == fallback.malloc && previous.free == fallback.free) {
            PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &small);
            PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &small);
        }
        installed = 1;
    }
    return PyModuleDef_Init(&module_def);
}
