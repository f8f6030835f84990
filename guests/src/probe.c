/* Sandbox probe: tries to reach outside the sandbox and reports what
 * happened, one line per attempt. Used by the sandbox tests; every attempt
 * must fail (or see nothing) inside sharegrid.
 *
 * usage: probe          attempts to escape; every line must say "denied"
 *        probe out      exercises /out: directories, rename, unlink, seek
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void try_open(const char *label, const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd >= 0) {
        char buf[64] = {0};
        ssize_t n = read(fd, buf, sizeof buf - 1);
        printf("%s: OPENED (read %zd bytes)\n", label, n);
        close(fd);
    } else {
        printf("%s: denied (%s)\n", label, strerror(errno));
    }
}

static int out_tree(void) {
    printf("mkdir /out/a: %s\n", mkdir("/out/a", 0755) == 0 ? "ok" : strerror(errno));
    printf("mkdir /out/a again: %s\n", mkdir("/out/a", 0755) == 0 ? "ok" : strerror(errno));
    FILE *f = fopen("/out/a/f.txt", "w");
    if (!f) { perror("/out/a/f.txt"); return 1; }
    fputs("first\n", f);
    fclose(f);
    f = fopen("/out/a/f.txt", "a");
    fputs("appended\n", f);
    fclose(f);
    printf("rename a/f.txt -> g.txt: %s\n", rename("/out/a/f.txt", "/out/g.txt") == 0 ? "ok" : strerror(errno));
    printf("rmdir /out/a: %s\n", rmdir("/out/a") == 0 ? "ok" : strerror(errno));
    int fd = open("/out/sparse.bin", O_WRONLY | O_CREAT, 0644);
    lseek(fd, 10, SEEK_SET);
    write(fd, "x", 1);
    printf("sparse size: %lld\n", (long long)lseek(fd, 0, SEEK_END));
    close(fd);
    f = fopen("/out/gone.txt", "w");
    fputs("temporary", f);
    fclose(f);
    printf("unlink gone.txt: %s\n", unlink("/out/gone.txt") == 0 ? "ok" : strerror(errno));
    f = fopen("/out/g.txt", "r");
    char buf[64] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    printf("g.txt has %zu bytes: %s", n, buf);
    struct stat st;
    stat("/out/g.txt", &st);
    printf("g.txt mtime %lld ino %llu\n", (long long)st.st_mtime, (unsigned long long)st.st_ino);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "out") == 0) return out_tree();
    try_open("read /etc/passwd", "/etc/passwd", O_RDONLY);
    try_open("read /in/../etc/passwd", "/in/../etc/passwd", O_RDONLY);
    try_open("read /in/../../etc/passwd", "/in/../../etc/passwd", O_RDONLY);
    try_open("read /out/../in/data.txt", "/out/../in/data.txt", O_RDONLY);
    try_open("write /in/data.txt", "/in/data.txt", O_WRONLY);
    try_open("create /in/new.txt", "/in/new.txt", O_WRONLY | O_CREAT);
    try_open("truncate /in/data.txt", "/in/data.txt", O_RDWR | O_TRUNC);
    printf("unlink /in/data.txt: %s\n", unlink("/in/data.txt") == 0 ? "DONE" : strerror(errno));
    printf("mkdir /in/d: %s\n", mkdir("/in/d", 0755) == 0 ? "DONE" : strerror(errno));
    printf("rename /in/data.txt -> /out/x: %s\n",
           rename("/in/data.txt", "/out/x") == 0 ? "DONE" : strerror(errno));
    int n = 0;
    for (char **e = environ; e && *e; e++) n++;
    printf("environment variables: %d\n", n);
    const char *home = getenv("HOME"), *path = getenv("PATH");
    printf("HOME=%s PATH=%s\n", home ? home : "(unset)", path ? path : "(unset)");
    DIR *d = opendir("/");
    printf("opendir /: %s\n", d ? "OPENED" : strerror(errno));
    if (d) closedir(d);
    try_open("read /in/data.txt", "/in/data.txt", O_RDONLY);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("realtime: %lld\n", (long long)ts.tv_sec);
    unsigned char r[8];
    if (getentropy(r, sizeof r) == 0) {
        printf("random:");
        for (int i = 0; i < 8; i++) printf(" %02x", r[i]);
        printf("\n");
    }
    return 0;
}
