/* Prints llama.cpp's logits for token ids fed in one batch: logits MODEL.gguf ID... */
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *data) { (void)level; (void)text; (void)data; }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: logits MODEL ID...\n"); return 2; }
    if (!getenv("LOGITS_VERBOSE")) llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    int n = argc - 2;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256; cp.n_batch = 256; cp.n_ubatch = 256; cp.n_threads = 1; cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot make a context\n"); return 1; }
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = atoi(argv[2 + i]); b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    printf("[");
    for (int i = 0; i < n; i++) {
        float *l = llama_get_logits_ith(ctx, i);
        printf(i ? ",[" : "[");
        for (int j = 0; j < nv; j++) printf(j ? ",%.7g" : "%.7g", l[j]);
        printf("]");
    }
    printf("]\n");
    return 0;
}
