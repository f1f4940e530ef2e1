// The independent minimal loop that `scripts/compare-minimal.sh` alternates with ipcbench.
//
// It does the work a benchmark of a transport cannot avoid and nothing else: two processes
// (fork), the client pinned to one core and the server to another, exchanging raw bytes of
// the given size. No framing, no stamps, no checks, no histogram: one clock read per round
// trip, the samples sorted once at the end.
//
//   loop pingpong tcp|uds|pipe|shm SIZE SECONDS CLIENT_CORE SERVER_CORE
//       prints {"p50_ns": N, "round_trips": N}
//   loop stream tcp|uds|pipe SIZE TOTAL_BYTES CLIENT_CORE SERVER_CORE
//       prints {"bytes_per_s": N, "bytes": N}
//
// tcp is 127.0.0.1 with TCP_NODELAY, uds a SOCK_STREAM socketpair, pipe two pipes: kernel
// defaults for every buffer, as ipcbench's defaults are. shm is one slot per direction in a
// shared mapping, each a sequence word followed by the message bytes, starting on a cache
// line: the writer copies the bytes in, then publishes the sequence number (release); the
// reader spins on it (acquire) and copies the bytes out. Stream reads take exactly SIZE bytes
// per message, as the sender writes them; the server answers one byte at the end and the
// client's clock runs from the first write to that byte, after a confirmed warm-up of a
// quarter as many messages.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void pin(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

// Returns 0 at end of stream before any byte, 1 when `len` bytes were read.
static int read_all(int fd, char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        if (n == 0) {
            if (got == 0) return 0;
            fprintf(stderr, "short read\n");
            exit(1);
        }
        got += (size_t)n;
    }
    return 1;
}

// The two connected ends: the client reads `fds[0]` and writes `fds[1]`, the server reads
// `fds[2]` and writes `fds[3]`.
static void connect_pair(const char *transport, int fds[4]) {
    if (strcmp(transport, "pipe") == 0) {
        int up[2], down[2];
        if (pipe(up) != 0 || pipe(down) != 0) die("pipe");
        fds[0] = down[0];
        fds[1] = up[1];
        fds[2] = up[0];
        fds[3] = down[1];
    } else if (strcmp(transport, "uds") == 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
        fds[0] = fds[1] = sv[0];
        fds[2] = fds[3] = sv[1];
    } else if (strcmp(transport, "tcp") == 0) {
        int listener = socket(AF_INET, SOCK_STREAM, 0);
        if (listener < 0) die("socket");
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof addr;
        if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
        if (listen(listener, 1) != 0) die("listen");
        if (getsockname(listener, (struct sockaddr *)&addr, &alen) != 0) die("getsockname");
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (client < 0) die("socket");
        if (connect(client, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
        int server = accept(listener, NULL, NULL);
        if (server < 0) die("accept");
        close(listener);
        int one = 1;
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fds[0] = fds[1] = client;
        fds[2] = fds[3] = server;
    } else {
        fprintf(stderr, "unknown transport %s (tcp, uds, pipe, shm)\n", transport);
        exit(2);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// Sorts the samples and prints their median.
static void print_p50(uint64_t *samples, size_t n) {
    if (n == 0) {
        fprintf(stderr, "no round trips\n");
        exit(1);
    }
    qsort(samples, n, sizeof *samples, cmp_u64);
    printf("{\"p50_ns\": %llu, \"round_trips\": %zu}\n", (unsigned long long)samples[n / 2], n);
}

// One direction of the shm loop: a sequence word and the message, on its own cache lines.
struct slot {
    _Alignas(64) _Atomic uint64_t seq;
    char data[];
};

static size_t slot_bytes(size_t size) {
    return (sizeof(struct slot) + size + 63) / 64 * 64;
}

#define MAX_SAMPLES 50000000u
#define WARMUP_ROUND_TRIPS 10000u

static void shm_pingpong(size_t size, double seconds, int client_core, int server_core) {
    size_t stride = slot_bytes(size);
    char *map = mmap(NULL, 2 * stride, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) die("mmap");
    struct slot *request = (struct slot *)map, *reply = (struct slot *)(map + stride);
    char *buf = malloc(size + 1);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin(server_core);
        for (uint64_t seq = 1;; seq++) {
            // Acquire: the request's bytes, written before its Release store, are visible.
            while (atomic_load_explicit(&request->seq, memory_order_acquire) != seq) {
            }
            memcpy(buf, request->data, size);
            memcpy(reply->data, buf, size);
            // Release: the reply's bytes are visible before the client sees its number.
            atomic_store_explicit(&reply->seq, seq, memory_order_release);
            if (size > 0 && buf[0] == 1) _exit(0);
        }
    }
    pin(client_core);
    memset(buf, 0, size + 1);
    uint64_t *samples = malloc(sizeof(uint64_t) * MAX_SAMPLES);
    size_t n = 0;
    uint64_t deadline = 0;
    for (uint64_t seq = 1;; seq++) {
        int last = n + 1 >= MAX_SAMPLES || (deadline != 0 && now_ns() >= deadline);
        if (last && size > 0) buf[0] = 1;
        uint64_t start = now_ns();
        memcpy(request->data, buf, size);
        atomic_store_explicit(&request->seq, seq, memory_order_release);
        while (atomic_load_explicit(&reply->seq, memory_order_acquire) != seq) {
        }
        memcpy(buf, reply->data, size);
        uint64_t end = now_ns();
        if (seq == WARMUP_ROUND_TRIPS) deadline = end + (uint64_t)(seconds * 1e9);
        if (seq > WARMUP_ROUND_TRIPS && !last) samples[n++] = end - start;
        if (last) break;
    }
    if (size == 0) kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    print_p50(samples, n);
}

static void socket_pingpong(const char *transport, size_t size, double seconds, int client_core,
                            int server_core) {
    int fds[4];
    connect_pair(transport, fds);
    char *buf = calloc(1, size + 1);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin(server_core);
        if (fds[0] != fds[2]) close(fds[0]);
        if (fds[1] != fds[3] && fds[1] != fds[0]) close(fds[1]);
        while (read_all(fds[2], buf, size)) write_all(fds[3], buf, size);
        _exit(0);
    }
    close(fds[2]);
    if (fds[3] != fds[2]) close(fds[3]);
    pin(client_core);
    uint64_t *samples = malloc(sizeof(uint64_t) * MAX_SAMPLES);
    size_t n = 0;
    uint64_t deadline = 0;
    for (uint64_t i = 1; n < MAX_SAMPLES; i++) {
        uint64_t start = now_ns();
        write_all(fds[1], buf, size);
        read_all(fds[0], buf, size);
        uint64_t end = now_ns();
        if (i == WARMUP_ROUND_TRIPS) deadline = end + (uint64_t)(seconds * 1e9);
        if (i > WARMUP_ROUND_TRIPS) {
            samples[n++] = end - start;
            if (end >= deadline) break;
        }
    }
    close(fds[1]);
    if (fds[0] != fds[1]) close(fds[0]);
    waitpid(child, NULL, 0);
    print_p50(samples, n);
}

static void stream(const char *transport, size_t size, uint64_t total, int client_core, int server_core) {
    int fds[4];
    connect_pair(transport, fds);
    char *buf = calloc(1, size);
    uint64_t messages = (total + size - 1) / size;
    // A warm-up of a quarter as many messages, confirmed before the clock starts (ipcbench
    // warms up too: a vCPU that was idle runs its first fraction of a second slower).
    uint64_t warmup = messages / 4 + 1;
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin(server_core);
        for (uint64_t i = 0; i < warmup; i++) {
            if (!read_all(fds[2], buf, size)) die("stream ended early");
        }
        write_all(fds[3], "w", 1);
        for (uint64_t i = 0; i < messages; i++) {
            if (!read_all(fds[2], buf, size)) die("stream ended early");
        }
        write_all(fds[3], "k", 1);
        _exit(0);
    }
    pin(client_core);
    memset(buf, 0x5a, size);
    char ack;
    for (uint64_t i = 0; i < warmup; i++) write_all(fds[1], buf, size);
    if (!read_all(fds[0], &ack, 1)) die("no warm-up confirmation");
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < messages; i++) write_all(fds[1], buf, size);
    if (!read_all(fds[0], &ack, 1)) die("no confirmation");
    uint64_t elapsed = now_ns() - start;
    waitpid(child, NULL, 0);
    double bytes = (double)messages * (double)size;
    printf("{\"bytes_per_s\": %.0f, \"bytes\": %.0f}\n", bytes / ((double)elapsed / 1e9), bytes);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr,
                "usage: %s pingpong tcp|uds|pipe|shm SIZE SECONDS CLIENT_CORE SERVER_CORE\n"
                "       %s stream tcp|uds|pipe SIZE TOTAL_BYTES CLIENT_CORE SERVER_CORE\n",
                argv[0], argv[0]);
        return 2;
    }
    const char *transport = argv[2];
    size_t size = strtoull(argv[3], NULL, 10);
    int client_core = atoi(argv[5]), server_core = atoi(argv[6]);
    if (strcmp(argv[1], "pingpong") == 0) {
        double seconds = atof(argv[4]);
        if (strcmp(transport, "shm") == 0)
            shm_pingpong(size, seconds, client_core, server_core);
        else
            socket_pingpong(transport, size, seconds, client_core, server_core);
    } else if (strcmp(argv[1], "stream") == 0 && size > 0) {
        stream(transport, size, strtoull(argv[4], NULL, 10), client_core, server_core);
    } else {
        fprintf(stderr, "unknown mode %s, or stream with SIZE 0\n", argv[1]);
        return 2;
    }
    return 0;
}
