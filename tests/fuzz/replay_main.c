/* Replays every file of the corpus directories (or files) given on the
 * command line through LLVMFuzzerTestOneInput, so ctest exercises each
 * committed input without libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tidemark/core.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* optional, as with libFuzzer: a target's one-time setup */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path)
{
        tm_buf b = TM_BUF_INIT(64u << 20);
        int r = tm_file_read_all(path, 64u << 20, &b);

        if (r < 0) {
                fprintf(stderr, "replay: cannot read '%s'\n", path);
                return 1;
        }
        LLVMFuzzerTestOneInput(b.data ? b.data : (const uint8_t *)"", b.len);
        tm_buf_dispose(&b);
        return 0;
}

int main(int argc, char **argv)
{
        int n = 0, fails = 0;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: no corpus '%s'\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        fails += replay_file(argv[i]);
                        n++;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return 1;
                while ((de = readdir(d))) {
                        char p[4096];

                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                        fails += replay_file(p);
                        n++;
                }
                closedir(d);
        }
        printf("replayed %d inputs, %d unreadable\n", n, fails);
        return fails ? 1 : 0;
}
