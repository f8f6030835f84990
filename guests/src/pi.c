/* Monte Carlo estimate of pi.
 *
 * usage: pi SEED SAMPLES
 *
 * Draws SAMPLES points in the unit square from xoshiro256** seeded with SEED
 * (through splitmix64) and counts those inside the quarter circle. Prints the
 * count and the estimate. Integer generator, float test.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t s[4];

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t next(void) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A double in [0, 1) from the top 53 bits. */
static inline double unit(void) { return (double)(next() >> 11) * 0x1.0p-53; }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: pi SEED SAMPLES\n");
        return 2;
    }
    char *end;
    uint64_t seed = strtoull(argv[1], &end, 10);
    if (*end) { fprintf(stderr, "pi: SEED %s is not an integer\n", argv[1]); return 2; }
    uint64_t samples = strtoull(argv[2], &end, 10);
    if (*end || samples == 0) { fprintf(stderr, "pi: SAMPLES %s is not a positive integer\n", argv[2]); return 2; }
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&seed);
    uint64_t inside = 0;
    for (uint64_t i = 0; i < samples; i++) {
        double x = unit(), y = unit();
        inside += (x * x + y * y < 1.0);
    }
    printf("inside %" PRIu64 " of %" PRIu64 "\n", inside, samples);
    printf("pi %.9f\n", 4.0 * (double)inside / (double)samples);
    return 0;
}
