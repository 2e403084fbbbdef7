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
 * Blocks are never returned: a run's memory is reset after it ends, and a session's interpreter
 * reuses its free lists.
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
extern void *memcpy(void *dest, const void *src, size_t n);
extern void *memset(void *dest, int c, size_t n);

#define GRAIN_SHIFT 3
#define SMALL_MAX 512
#define CLASSES (SMALL_MAX >> GRAIN_SHIFT)
#define BLOCK_SHIFT 14
#define BLOCK_SIZE ((size_t)1 << BLOCK_SHIFT)
/* Blocks come from libc 16 at a time (256 KiB). */
#define BLOCKS_PER_CHUNK 16

/* At the start of each block, so that a pointer's block (its address rounded down) says which
 * class it holds. A foreign pointer's rounded-down address holds anything, so the header counts
 * only if the list of blocks has this block at `index`: pymalloc's address_in_range. Eight
 * bytes, so the objects after it stay 8-aligned. */
typedef struct {
    uint32_t index;
    uint32_t cls;
} BlockHeader;

static char **block_list;
static size_t blocks_len;
static size_t blocks_cap;
static void *free_list[CLASSES + 1];
static char *bump[CLASSES + 1];
static char *bump_end[CLASSES + 1];
static char *spare_blocks;
static char *spare_end;
/* What the MEM and OBJ domains had before (the same raw malloc in this build); large requests
 * and foreign pointers go there. */
static PyMemAllocatorEx fallback;

static inline unsigned class_of_pointer(const void *ptr) {
    const BlockHeader *header = (const BlockHeader *)((uintptr_t)ptr & ~(uintptr_t)(BLOCK_SIZE - 1));
    uint32_t index = header->index;
    if (index < blocks_len && block_list[index] == (const char *)header)
        return header->cls;
    return 0;
}

static void *refill(unsigned cls) {
    size_t size = (size_t)cls << GRAIN_SHIFT;
    if (bump[cls] + size > bump_end[cls]) {
        if (blocks_len == blocks_cap) {
            size_t cap = blocks_cap ? blocks_cap * 2 : 1024;
            char **grown = fallback.realloc(fallback.ctx, block_list, cap * sizeof *block_list);
            if (grown == NULL)
                return NULL;
            block_list = grown;
            blocks_cap = cap;
        }
        if (spare_blocks == spare_end) {
            char *chunk = aligned_alloc(BLOCK_SIZE, BLOCK_SIZE * BLOCKS_PER_CHUNK);
            if (chunk == NULL)
                return NULL;
            spare_blocks = chunk;
            spare_end = chunk + BLOCK_SIZE * BLOCKS_PER_CHUNK;
        }
        char *block = spare_blocks;
        spare_blocks += BLOCK_SIZE;
        BlockHeader *header = (BlockHeader *)block;
        header->index = (uint32_t)blocks_len;
        header->cls = cls;
        block_list[blocks_len++] = block;
        bump[cls] = block + sizeof(BlockHeader);
        bump_end[cls] = block + BLOCK_SIZE;
    }
    void *ptr = bump[cls];
    bump[cls] += size;
    return ptr;
}

static void *small_malloc(void *ctx, size_t size) {
    (void)ctx;
    if (size > SMALL_MAX)
        return fallback.malloc(fallback.ctx, size);
    unsigned cls = size == 0 ? 1 : (unsigned)((size + (1 << GRAIN_SHIFT) - 1) >> GRAIN_SHIFT);
    void *ptr = free_list[cls];
    if (ptr != NULL) {
        free_list[cls] = *(void **)ptr;
        return ptr;
    }
    return refill(cls);
}

static void small_free(void *ctx, void *ptr) {
    (void)ctx;
    if (ptr == NULL)
        return;
    unsigned cls = class_of_pointer(ptr);
    if (cls == 0) {
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
    if (size > SMALL_MAX)
        return fallback.calloc(fallback.ctx, nelem, elsize);
    void *ptr = small_malloc(ctx, size);
    if (ptr != NULL)
        memset(ptr, 0, size);
    return ptr;
}

static void *small_realloc(void *ctx, void *ptr, size_t size) {
    if (ptr == NULL)
        return small_malloc(ctx, size);
    unsigned cls = class_of_pointer(ptr);
    if (cls == 0)
        return fallback.realloc(fallback.ctx, ptr, size);
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

/* How many blocks the free lists have taken: tests read it to see that the allocator is the
 * one in use. */
static PyObject *blocks(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyLong_FromSize_t(blocks_len);
}

static PyMethodDef methods[] = {
    {"blocks", blocks, METH_NOARGS, "The number of 16 KiB blocks the free lists have taken."},
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
