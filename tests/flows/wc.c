/* Counts the words of the file named first and writes the count to the file named second. */
#include <ctype.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: wc FILE OUT\n"); return 2; }
    FILE *in = fopen(argv[1], "r");
    if (!in) { perror(argv[1]); return 1; }
    long words = 0; int c, inside = 0;
    while ((c = fgetc(in)) != EOF) {
        if (isspace(c)) inside = 0; else if (!inside) { inside = 1; words++; }
    }
    fclose(in);
    FILE *out = fopen(argv[2], "w");
    fprintf(out, "%ld\n", words);
    fclose(out);
    return 0;
}
