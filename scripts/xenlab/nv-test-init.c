/*
 * Stand-in /init for the NV driver domain until the static domain-nv binary replaces it
 * (mk-guests.sh takes DOMAIN_NV_BIN=...; this program is the default).
 *
 * It does what domain-nv's /init has to do before any netback work, with no libraries:
 *   1. mounts /proc, /sys, /dev (devtmpfs);
 *   2. loads the kernel modules the builder put in /lib/modules/domain-nv/ (file names sort in load
 *      order: NN-name.ko) with finit_module(2); EEXIST (built in / loaded) is fine;
 *   3. opens /dev/xen/{gntdev,evtchn,xenbus,privcmd,gntalloc};
 *   4. speaks the xenstore wire protocol over /dev/xen/xenbus: reads its domid and writes
 *        data/lab-devices = "gntdev=ok evtchn=ok xenbus=ok privcmd=ok gntalloc=ok"
 *        data/lab-init    = "ok"   (only if gntdev, evtchn and xenbus all opened)
 *      under its own home /local/domain/<domid>/ (relative paths);
 *   5. stays alive (PID 1 must not exit) until the domain is destroyed.
 * Build: gcc -static -O2 -o nv-test-init nv-test-init.c  (or musl-gcc -static)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* from xen/io/xs_wire.h */
struct xsd_sockmsg { uint32_t type, req_id, tx_id, len; };
enum { XS_READ = 2, XS_WRITE = 11, XS_ERROR = 16 };

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(1, "nv-test-init: %s\n", buf);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void load_modules(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) { say("no %s (%s): loading no modules", dir, strerror(errno)); return; }
    char *names[64]; int n = 0; struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strstr(e->d_name, ".ko")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (int i = 0; i < n; i++) {
        char p[512]; snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) { say("module %s: open: %s", p, strerror(errno)); continue; }
        long r = syscall(SYS_finit_module, fd, "", 0);
        say("module %s: %s", names[i], r == 0 ? "loaded" : errno == EEXIST ? "already there" : strerror(errno));
        close(fd);
    }
}

/* One request/reply on the xenbus device. Returns reply payload length, -1 on error. */
static int xs_req(int fd, uint32_t type, const char *body, size_t blen, char *reply, size_t rmax)
{
    static uint32_t req = 1;
    char msg[4096];
    struct xsd_sockmsg h = { type, req++, 0, (uint32_t)blen };
    if (blen + sizeof h > sizeof msg) return -1;
    memcpy(msg, &h, sizeof h); memcpy(msg + sizeof h, body, blen);
    if (write(fd, msg, sizeof h + blen) != (ssize_t)(sizeof h + blen)) { say("xenbus write: %s", strerror(errno)); return -1; }
    char in[4096]; size_t got = 0;
    while (got < sizeof h || got < sizeof h + ((struct xsd_sockmsg *)in)->len) {
        ssize_t r = read(fd, in + got, sizeof in - got);
        if (r <= 0) { say("xenbus read: %s", r ? strerror(errno) : "EOF"); return -1; }
        got += r;
    }
    struct xsd_sockmsg *rh = (struct xsd_sockmsg *)in;
    size_t l = rh->len < rmax - 1 ? rh->len : rmax - 1;
    memcpy(reply, in + sizeof h, l); reply[l] = 0;
    if (rh->type == XS_ERROR) { say("xenstore error reply to type %u: %s", type, reply); return -1; }
    return (int)l;
}

static int xs_write(int fd, const char *path, const char *val)
{
    char body[1024], rep[256];
    size_t pl = strlen(path) + 1, vl = strlen(val);
    memcpy(body, path, pl); memcpy(body + pl, val, vl);
    int r = xs_req(fd, XS_WRITE, body, pl + vl, rep, sizeof rep);
    say("xenstore write %s = \"%s\": %s", path, val, r < 0 ? "FAILED" : "ok");
    return r;
}

int main(void)
{
    mkdir("/proc", 0755); mkdir("/sys", 0755); mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    if (fcntl(1, F_GETFD) < 0) { /* no /dev/console in the initramfs: open it now */
        int c = open("/dev/console", O_RDWR);
        if (c >= 0) { dup2(c, 0); dup2(c, 1); dup2(c, 2); if (c > 2) close(c); }
    }
    say("started as pid %d", (int)getpid());
    load_modules("/lib/modules/domain-nv");

    const char *devs[] = { "gntdev", "evtchn", "xenbus", "privcmd", "gntalloc" };
    char summary[256] = ""; int required_ok = 1, xb = -1;
    for (int i = 0; i < 5; i++) {
        char p[64]; snprintf(p, sizeof p, "/dev/xen/%s", devs[i]);
        int fd = -1;
        for (int t = 0; t < 50 && fd < 0; t++) {       /* devtmpfs node may lag a moment: 5 s max */
            fd = open(p, O_RDWR | O_CLOEXEC);
            if (fd < 0) usleep(100000);
        }
        say("open %s: %s", p, fd >= 0 ? "ok" : strerror(errno));
        snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "%s%s=%s",
                 i ? " " : "", devs[i], fd >= 0 ? "ok" : "fail");
        if (fd < 0 && i < 3) required_ok = 0;
        if (i == 2) xb = fd; else if (fd >= 0) close(fd);
    }
    if (xb >= 0) {
        char domid[64];
        if (xs_req(xb, XS_READ, "domid", 6, domid, sizeof domid) >= 0) say("my domid is %s", domid);
        xs_write(xb, "data/lab-devices", summary);
        if (required_ok) xs_write(xb, "data/lab-init", "ok");
    }
    say("%s; idling", required_ok ? "ALL-DEVICES-OK" : "SOME-DEVICES-FAILED");
    for (;;) pause();
}
