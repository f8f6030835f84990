/* Word count over every file under IN_DIR (default /in), recursively.
 *
 * usage: wordcount
 *
 * Prints "lines words bytes path" per file, in byte order of path, then a
 * total line, and writes the same report to OUT_DIR/wordcount.txt. A word is
 * a maximal run of non-whitespace bytes, as in wc(1) in the C locale.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef IN_DIR
#define IN_DIR "/in"
#endif
#ifndef OUT_DIR
#define OUT_DIR "/out"
#endif

typedef struct {
    char *path;
    unsigned long long lines, words, bytes;
} entry;

static entry *entries;
static size_t n_entries, cap_entries;

static void count_file(const char *path, const char *rel) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    static unsigned char buf[1 << 16];
    unsigned long long lines = 0, words = 0, bytes = 0;
    int in_word = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        bytes += n;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = buf[i];
            int space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
            if (c == '\n') lines++;
            if (space) in_word = 0;
            else if (!in_word) { in_word = 1; words++; }
        }
    }
    fclose(f);
    if (n_entries == cap_entries) {
        cap_entries = cap_entries ? cap_entries * 2 : 64;
        entries = realloc(entries, cap_entries * sizeof *entries);
        if (!entries) { fprintf(stderr, "wordcount: out of memory\n"); exit(1); }
    }
    entries[n_entries++] = (entry){strdup(rel), lines, words, bytes};
}

static void walk(const char *dir, const char *rel) {
    DIR *d = opendir(dir);
    if (!d) { perror(dir); exit(1); }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096], sub[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) { perror(path); exit(1); }
        if (S_ISDIR(st.st_mode)) walk(path, sub);
        else if (S_ISREG(st.st_mode)) count_file(path, sub);
    }
    closedir(d);
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

static void report(FILE *f) {
    unsigned long long tl = 0, tw = 0, tb = 0;
    for (size_t i = 0; i < n_entries; i++) {
        entry *e = &entries[i];
        fprintf(f, "%llu %llu %llu %s\n", e->lines, e->words, e->bytes, e->path);
        tl += e->lines; tw += e->words; tb += e->bytes;
    }
    fprintf(f, "%llu %llu %llu total (%zu files)\n", tl, tw, tb, n_entries);
}

int main(void) {
    walk(IN_DIR, "");
    qsort(entries, n_entries, sizeof *entries, by_path);
    report(stdout);
    FILE *f = fopen(OUT_DIR "/wordcount.txt", "w");
    if (!f) { perror(OUT_DIR "/wordcount.txt"); return 1; }
    report(f);
    if (fclose(f) != 0) { perror(OUT_DIR "/wordcount.txt"); return 1; }
    return 0;
}
