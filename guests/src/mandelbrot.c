/* Mandelbrot tile renderer.
 *
 * usage: mandelbrot COL ROW [COLS ROWS WIDTH HEIGHT MAX_ITER]
 *
 * Renders tile (COL, ROW) of a WIDTH x HEIGHT image of the Mandelbrot set cut
 * into COLS x ROWS tiles (defaults: 8 x 8 tiles of an 800 x 600 image, 256
 * iterations) and writes it to OUT_DIR/tile-COL-ROW.ppm (binary PPM, P6).
 * Prints the tile's file name and its checksum of iteration counts.
 * Double-precision floating point throughout: this is the float kernel.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef OUT_DIR
#define OUT_DIR "/out"
#endif

static long arg(int argc, char **argv, int i, long dflt) {
    if (i >= argc) return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v < 0) {
        fprintf(stderr, "mandelbrot: argument %d (%s) is not a non-negative integer\n", i, argv[i]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: mandelbrot COL ROW [COLS ROWS WIDTH HEIGHT MAX_ITER]\n");
        return 2;
    }
    long col = arg(argc, argv, 1, 0), row = arg(argc, argv, 2, 0);
    long cols = arg(argc, argv, 3, 8), rows = arg(argc, argv, 4, 8);
    long width = arg(argc, argv, 5, 800), height = arg(argc, argv, 6, 600);
    long max_iter = arg(argc, argv, 7, 256);
    if (cols == 0 || rows == 0 || col >= cols || row >= rows || width < cols || height < rows ||
        width > 20000 || height > 20000 || max_iter == 0) {
        fprintf(stderr, "mandelbrot: tile (%ld,%ld) does not fit a %ldx%ld grid over %ldx%ld pixels\n",
                col, row, cols, rows, width, height);
        return 2;
    }
    long x0 = width * col / cols, x1 = width * (col + 1) / cols;
    long y0 = height * row / rows, y1 = height * (row + 1) / rows;
    long tw = x1 - x0, th = y1 - y0;
    unsigned char *pix = malloc((size_t)tw * th * 3);
    if (!pix) {
        fprintf(stderr, "mandelbrot: out of memory for a %ldx%ld tile\n", tw, th);
        return 1;
    }
    /* The view: real part -2.5 .. 1.0, imaginary part centred on 0 with the
     * image's aspect ratio. */
    const double re_min = -2.5, re_max = 1.0;
    const double scale = (re_max - re_min) / (double)width;
    const double im_max = scale * (double)height / 2.0;
    uint64_t checksum = 0;
    unsigned char *p = pix;
    for (long y = y0; y < y1; y++) {
        double ci = im_max - (double)y * scale;
        for (long x = x0; x < x1; x++) {
            double cr = re_min + (double)x * scale;
            double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
            long n = 0;
            while (n < max_iter && zr2 + zi2 <= 4.0) {
                zi = 2.0 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
                zr2 = zr * zr;
                zi2 = zi * zi;
                n++;
            }
            checksum = checksum * 31 + (uint64_t)n;
            if (n == max_iter) {
                p[0] = p[1] = p[2] = 0;
            } else {
                /* A smooth blue-gold palette from the escape count. */
                unsigned t = (unsigned)(n * 255 / max_iter);
                unsigned k = (unsigned)(n % 32) * 8;
                p[0] = (unsigned char)(t < 128 ? t * 2 : 255);
                p[1] = (unsigned char)((k + t) / 2);
                p[2] = (unsigned char)(255 - t);
            }
            p += 3;
        }
    }
    char path[256];
    snprintf(path, sizeof path, "%s/tile-%ld-%ld.ppm", OUT_DIR, col, row);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f, "P6\n%ld %ld\n255\n", tw, th);
    if (fwrite(pix, 3, (size_t)tw * th, f) != (size_t)tw * th || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    free(pix);
    printf("tile-%ld-%ld.ppm %ldx%ld at (%ld,%ld) checksum %016llx\n", col, row, tw, th, x0, y0,
           (unsigned long long)checksum);
    return 0;
}
