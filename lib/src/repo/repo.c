#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <tidemark/index.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "repo_internal.h"

#define CONFIG_MAX  (64u * 1024)
#define KEYFILE_MAX (64u * 1024)
#define SALT_LEN    16

static int mkdir_p(const char *path, mode_t mode)
{
        char tmp[4096];
        size_t n = strlen(path);

        if (n == 0 || n >= sizeof(tmp))
                return -EINVAL;
        memcpy(tmp, path, n + 1);
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int tm_repo__put_sealed(tm_repo *repo, const char *dir, const char *aad, const void *plain,
                        size_t n, tm_id *ret_id)
{
        tm_buf sealed = TM_BUF_INIT(0);
        char name[128], hex[TM_ID_HEX_LEN + 1];
        tm_id id;
        int r;

        r = tm_crypto_seal(repo->key.enc, aad, strlen(aad), plain, n, &sealed);
        if (r < 0)
                goto out;
        tm_crypto_sha256(sealed.data, sealed.len, &id);
        tm_id_hex(&id, hex);
        snprintf(name, sizeof(name), "%s/%s", dir, hex);
        r = tm_backend_put(repo->be, name, sealed.data, sealed.len);
        if (r < 0)
                goto out;
        if (ret_id)
                *ret_id = id;
out:
        tm_buf_dispose(&sealed);
        return r;
}

int tm_repo__get_sealed(tm_repo *repo, const char *dir, const char *aad, const tm_id *id,
                        size_t limit, tm_buf *ret)
{
        tm_buf raw = TM_BUF_INIT(limit), plain = TM_BUF_INIT(limit);
        char name[128], hex[TM_ID_HEX_LEN + 1];
        tm_id got;
        int r;

        tm_id_hex(id, hex);
        snprintf(name, sizeof(name), "%s/%s", dir, hex);
        r = tm_backend_get(repo->be, name, limit, &raw);
        if (r < 0)
                goto out;
        tm_crypto_sha256(raw.data, raw.len, &got);
        if (tm_id_cmp(&got, id) != 0) {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG, "object '%s' does not match its name", name);
                goto out;
        }
        r = tm_crypto_open(repo->key.enc, aad, strlen(aad), raw.data, raw.len, &plain);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "object '%s' fails authentication", name);
                goto out;
        }
        tm_buf_move(ret, &plain);
out:
        tm_buf_dispose(&plain);
        tm_buf_dispose(&raw);
        return r;
}

/* ---- config ---- */

static int config_encode(const tm_repo *repo, tm_buf *out)
{
        char seed_hex[65], now[40];
        json_t *j = NULL;
        char *s = NULL;
        int r = -ENOMEM;

        tm_hex_encode(repo->gear_seed, 32, seed_hex);
        tm_time_format(tm_time_now(), now, sizeof(now));
        j = json_pack("{s:i, s:s, s:{s:I, s:I, s:I, s:s}, s:i, s:s}", "version", 1, "id",
                      repo->id_hex, "chunker", "min", (json_int_t)repo->cparams.min, "avg",
                      (json_int_t)repo->cparams.avg, "max", (json_int_t)repo->cparams.max, "seed",
                      seed_hex, "compression", repo->level, "created", now);
        if (!j)
                goto out;
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                goto out;
        r = tm_buf_append(out, s, strlen(s));
out:
        free(s);
        json_decref(j);
        return r;
}

static int config_decode(tm_repo *repo, const tm_buf *plain)
{
        json_t *j = NULL;
        const char *id = NULL, *seed = NULL;
        json_int_t mn, avg, mx;
        int version, level, r = -EBADMSG;

        j = json_loadb((const char *)plain->data, plain->len, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                goto out;
        if (json_unpack(j, "{s:i, s:s, s:{s:I, s:I, s:I, s:s}, s:i}", "version", &version, "id",
                        &id, "chunker", "min", &mn, "avg", &avg, "max", &mx, "seed", &seed,
                        "compression", &level) < 0)
                goto out;
        if (version != 1 || strlen(id) != TM_ID_HEX_LEN || mn <= 0 || avg <= 0 || mx <= 0 ||
            mx > 0xffffffffLL || level < 0 || level > 19)
                goto out;
        if (tm_hex_decode(seed, repo->gear_seed, 32) < 0)
                goto out;
        memcpy(repo->id_hex, id, TM_ID_HEX_LEN + 1);
        repo->cparams.min = (uint32_t)mn;
        repo->cparams.avg = (uint32_t)avg;
        repo->cparams.max = (uint32_t)mx;
        if (tm_chunker_params_check(&repo->cparams) < 0)
                goto out;
        repo->level = level;
        r = 0;
out:
        json_decref(j);
        return r;
}

/* ---- keys ---- */

static void who(char *host, size_t hn, char *user, size_t un)
{
        struct passwd *pw = getpwuid(geteuid());

        if (gethostname(host, hn) < 0)
                snprintf(host, hn, "unknown");
        host[hn - 1] = 0;
        snprintf(user, un, "%s", pw ? pw->pw_name : "unknown");
}

static int key_write(tm_repo *repo, const char *pass, size_t passlen, tm_id *ret_id)
{
        uint8_t salt[SALT_LEN], kek[TM_KEY_LEN], master[2 * TM_KEY_LEN];
        tm_buf sealed = TM_BUF_INIT(0), b64salt = TM_BUF_INIT(0), b64data = TM_BUF_INIT(0);
        char host[256], user[64], now[40], name[128], hex[TM_ID_HEX_LEN + 1];
        json_t *j = NULL;
        char *s = NULL;
        tm_id id;
        int r;

        r = tm_crypto_random(salt, sizeof(salt));
        if (r < 0)
                goto out;
        r = tm_crypto_kdf(&repo->kdf, pass, passlen, salt, sizeof(salt), kek);
        if (r < 0)
                goto out;
        memcpy(master, repo->key.enc, TM_KEY_LEN);
        memcpy(master + TM_KEY_LEN, repo->key.mac, TM_KEY_LEN);
        r = tm_crypto_seal(kek, "tmkey", 5, master, sizeof(master), &sealed);
        if (r < 0)
                goto out;
        r = tm_base64_encode(salt, sizeof(salt), &b64salt);
        if (r < 0)
                goto out;
        r = tm_base64_encode(sealed.data, sealed.len, &b64data);
        if (r < 0)
                goto out;
        who(host, sizeof(host), user, sizeof(user));
        tm_time_format(tm_time_now(), now, sizeof(now));
        r = -ENOMEM;
        j = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:I, s:I, s:I}, s:s, s:s}", "version", 1,
                      "created", now, "host", host, "username", user, "kdf", "alg", repo->kdf.alg,
                      "t", (json_int_t)repo->kdf.t, "m", (json_int_t)repo->kdf.m, "p",
                      (json_int_t)repo->kdf.p, "salt", (const char *)b64salt.data, "data",
                      (const char *)b64data.data);
        if (!j)
                goto out;
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_INDENT(0));
        if (!s)
                goto out;
        tm_crypto_sha256(s, strlen(s), &id);
        tm_id_hex(&id, hex);
        snprintf(name, sizeof(name), "keys/%s", hex);
        r = tm_backend_put(repo->be, name, s, strlen(s));
        if (r < 0)
                goto out;
        if (ret_id)
                *ret_id = id;
out:
        explicit_bzero(kek, sizeof(kek));
        explicit_bzero(master, sizeof(master));
        free(s);
        json_decref(j);
        tm_buf_dispose(&b64data);
        tm_buf_dispose(&b64salt);
        tm_buf_dispose(&sealed);
        return r;
}

struct key_file {
        struct tm_kdf_params kdf;
        tm_buf salt, data;
        char host[256], username[64];
        int64_t created;
};

static int key_file_parse(const tm_buf *raw, struct key_file *kf)
{
        const char *alg, *salt, *data, *created = "", *host = "", *user = "";
        json_int_t t, m, p;
        json_t *j = NULL;
        int version, r = -EBADMSG;

        memset(kf, 0, sizeof(*kf));
        kf->salt = TM_BUF_INIT(1024);
        kf->data = TM_BUF_INIT(4096);
        j = json_loadb((const char *)raw->data, raw->len, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                goto out;
        if (json_unpack(j, "{s:i, s?:s, s?:s, s?:s, s:{s:s, s:I, s:I, s:I}, s:s, s:s}", "version",
                        &version, "created", &created, "host", &host, "username", &user, "kdf",
                        "alg", &alg, "t", &t, "m", &m, "p", &p, "salt", &salt, "data", &data) < 0)
                goto out;
        if (version != 1 || strlen(alg) >= sizeof(kf->kdf.alg) || t <= 0 || m <= 0 || p <= 0 ||
            t > 0xffffffffLL || m > 0xffffffffLL || p > 255)
                goto out;
        snprintf(kf->kdf.alg, sizeof(kf->kdf.alg), "%s", alg);
        kf->kdf.t = (uint32_t)t;
        kf->kdf.m = (uint32_t)m;
        kf->kdf.p = (uint32_t)p;
        snprintf(kf->host, sizeof(kf->host), "%s", host);
        snprintf(kf->username, sizeof(kf->username), "%s", user);
        if (tm_time_parse(created, &kf->created, NULL) < 0)
                kf->created = 0;
        if (tm_base64_decode(salt, 1024, &kf->salt) < 0 ||
            tm_base64_decode(data, 4096, &kf->data) < 0)
                goto out;
        r = 0;
out:
        json_decref(j);
        return r;
}

static void key_file_dispose(struct key_file *kf)
{
        tm_buf_dispose(&kf->salt);
        tm_buf_dispose(&kf->data);
}

/* Try one key file with the passphrase: 0 and the master key, -EACCES. */
static int key_try(tm_repo *repo, const char *name, const char *pass, size_t passlen)
{
        tm_buf raw = TM_BUF_INIT(KEYFILE_MAX), master = TM_BUF_INIT(4096);
        struct key_file kf = { 0 };
        uint8_t kek[TM_KEY_LEN];
        int r;

        r = tm_backend_get(repo->be, name, KEYFILE_MAX, &raw);
        if (r < 0)
                goto out;
        r = key_file_parse(&raw, &kf);
        if (r < 0) {
                tm_log(TM_LOG_WARN, "key file '%s' is malformed, skipped", name);
                goto out;
        }
        r = tm_crypto_kdf(&kf.kdf, pass, passlen, kf.salt.data, kf.salt.len, kek);
        if (r < 0)
                goto out;
        r = tm_crypto_open(kek, "tmkey", 5, kf.data.data, kf.data.len, &master);
        if (r < 0 || master.len != 2 * TM_KEY_LEN) {
                r = -EACCES;
                goto out;
        }
        memcpy(repo->key.enc, master.data, TM_KEY_LEN);
        memcpy(repo->key.mac, master.data + TM_KEY_LEN, TM_KEY_LEN);
        repo->kdf = kf.kdf;
out:
        explicit_bzero(kek, sizeof(kek));
        tm_buf_dispose_secret(&master);
        tm_buf_dispose(&raw);
        key_file_dispose(&kf);
        return r;
}

struct name_list {
        char **names;
        size_t n, cap;
};

static int name_list_add(const char *name, uint64_t size, void *ud)
{
        struct name_list *l = ud;

        (void)size;
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                char **p = realloc(l->names, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                l->names = p;
                l->cap = ncap;
        }
        l->names[l->n] = strdup(name);
        if (!l->names[l->n])
                return -ENOMEM;
        l->n++;
        return 0;
}

static void name_list_dispose(struct name_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
        memset(l, 0, sizeof(*l));
}

/* The id in "dir/<hex>" (or "data/ab/<hex>"). */
static int name_to_id(const char *name, tm_id *ret)
{
        const char *slash = strrchr(name, '/');

        return tm_id_parse(slash ? slash + 1 : name, ret);
}

int tm_repo_key_list(tm_repo *repo, struct tm_key_info **ret, size_t *ret_n)
{
        struct name_list l = { 0 };
        struct tm_key_info *arr = NULL;
        size_t n = 0;
        int r;

        r = tm_backend_list(repo->be, "keys/", name_list_add, &l);
        if (r < 0)
                goto out;
        arr = calloc(l.n ? l.n : 1, sizeof(*arr));
        if (!arr) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < l.n; i++) {
                tm_buf raw = TM_BUF_INIT(KEYFILE_MAX);
                struct key_file kf;

                if (name_to_id(l.names[i], &arr[n].id) < 0)
                        continue;
                r = tm_backend_get(repo->be, l.names[i], KEYFILE_MAX, &raw);
                if (r < 0) {
                        tm_buf_dispose(&raw);
                        goto out;
                }
                if (key_file_parse(&raw, &kf) == 0) {
                        snprintf(arr[n].host, sizeof(arr[n].host), "%s", kf.host);
                        snprintf(arr[n].username, sizeof(arr[n].username), "%s", kf.username);
                        snprintf(arr[n].alg, sizeof(arr[n].alg), "%s", kf.kdf.alg);
                        arr[n].created = kf.created;
                }
                key_file_dispose(&kf);
                tm_buf_dispose(&raw);
                arr[n].current = tm_id_cmp(&arr[n].id, &repo->key_id) == 0;
                n++;
        }
        *ret = arr;
        *ret_n = n;
        arr = NULL;
        r = 0;
out:
        free(arr);
        name_list_dispose(&l);
        return r;
}

int tm_repo_key_add(tm_repo *repo, const char *pass, size_t passlen, tm_id *ret_id)
{
        return key_write(repo, pass, passlen, ret_id);
}

int tm_repo_key_remove(tm_repo *repo, const tm_id *key_id)
{
        char name[128], hex[TM_ID_HEX_LEN + 1];

        if (tm_id_cmp(key_id, &repo->key_id) == 0)
                return -EBUSY;
        tm_id_hex(key_id, hex);
        snprintf(name, sizeof(name), "keys/%s", hex);
        return tm_backend_remove(repo->be, name);
}

int tm_repo_key_passwd(tm_repo *repo, const char *pass, size_t passlen, tm_id *ret_id)
{
        char name[128], hex[TM_ID_HEX_LEN + 1];
        tm_id id;
        int r;

        r = key_write(repo, pass, passlen, &id);
        if (r < 0)
                return r;
        tm_id_hex(&repo->key_id, hex);
        snprintf(name, sizeof(name), "keys/%s", hex);
        r = tm_backend_remove(repo->be, name);
        if (r < 0 && r != -ENOENT)
                return r;
        repo->key_id = id;
        if (ret_id)
                *ret_id = id;
        return 0;
}

/* ---- catalog ---- */

static int catalog_default_path(const char *id_hex, char **ret)
{
        const char *env = getenv("TIDEMARK_CATALOG"), *xdg = getenv("XDG_CACHE_HOME"),
                   *home = getenv("HOME");
        char buf[4096];

        if (env && *env) {
                *ret = strdup(env);
                return *ret ? 0 : -ENOMEM;
        }
        if (xdg && *xdg)
                snprintf(buf, sizeof(buf), "%s/tidemark/%.16s/catalog.db", xdg, id_hex);
        else if (home && *home)
                snprintf(buf, sizeof(buf), "%s/.cache/tidemark/%.16s/catalog.db", home, id_hex);
        else
                snprintf(buf, sizeof(buf), "/var/cache/tidemark/%.16s/catalog.db", id_hex);
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

static int catalog_open(tm_repo *repo)
{
        char dir[4096], *slash, *meta = NULL;
        int r;

        snprintf(dir, sizeof(dir), "%s", repo->catalog_path);
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                r = mkdir_p(dir, 0700);
                if (r < 0)
                        return tm_log_errno(TM_LOG_ERR, r, "cannot create catalog directory '%s'",
                                            dir);
        }
        r = tm_catalog_open(repo->catalog_path, &repo->cat);
        if (r == -EBADMSG) {
                tm_log(TM_LOG_WARN, "catalog '%s' is unusable, rebuilding it from the repository",
                       repo->catalog_path);
                tm_catalog_destroy(repo->catalog_path);
                r = tm_catalog_open(repo->catalog_path, &repo->cat);
        }
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r, "cannot open catalog '%s'", repo->catalog_path);
        r = tm_catalog_meta_get(repo->cat, "repository", &meta);
        if (r == 0 && strcmp(meta, repo->id_hex) != 0) {
                tm_log(TM_LOG_WARN, "catalog '%s' belongs to another repository, rebuilding",
                       repo->catalog_path);
                r = tm_catalog_clear(repo->cat);
                if (r < 0)
                        goto out;
                r = -ENOENT;
        }
        if (r == -ENOENT)
                r = tm_catalog_meta_set(repo->cat, "repository", repo->id_hex);
out:
        free(meta);
        return r;
}

int tm_repo__ingest_index(tm_repo *repo, const tm_id *index_id)
{
        tm_buf plain = TM_BUF_INIT(TM_INDEX_MAX), raw = TM_BUF_INIT(TM_INDEX_MAX);
        struct tm_index idx = TM_INDEX_INIT;
        char name[128], hex[TM_ID_HEX_LEN + 1];
        tm_id got;
        int r;

        tm_id_hex(index_id, hex);
        snprintf(name, sizeof(name), "index/%s", hex);
        r = tm_backend_get(repo->be, name, TM_INDEX_MAX, &raw);
        if (r < 0)
                goto out;
        tm_crypto_sha256(raw.data, raw.len, &got);
        if (tm_id_cmp(&got, index_id) != 0) {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG, "index file '%s' does not match its name",
                                 name);
                goto out;
        }
        r = tm_index_decode(&repo->key, raw.data, raw.len, &idx);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "index file '%s' cannot be decoded", name);
                goto out;
        }
        for (size_t i = 0; i < idx.n_packs; i++) {
                const struct tm_index_pack *p = &idx.packs[i];

                r = tm_catalog_pack_add(repo->cat, &p->pack_id, p->n ? p->entries[0].type : 0,
                                        p->pack_size);
                if (r < 0)
                        goto out;
                for (size_t k = 0; k < p->n; k++) {
                        r = tm_catalog_blob_add(repo->cat, &p->pack_id, &p->entries[k]);
                        if (r < 0)
                                goto out;
                }
        }
        r = tm_catalog_index_add(repo->cat, index_id);
        /* another handle on this catalog (backupd's WAL stream beside a base
         * backup) recorded it between our listing and now: same outcome */
        if (r == -EEXIST)
                r = 0;
out:
        tm_index_dispose(&idx);
        tm_buf_dispose(&raw);
        tm_buf_dispose(&plain);
        return r;
}

static int id_in_list(const struct name_list *l, const tm_id *id)
{
        char hex[TM_ID_HEX_LEN + 1];

        tm_id_hex(id, hex);
        for (size_t i = 0; i < l->n; i++) {
                const char *s = strrchr(l->names[i], '/');

                if (s && strcmp(s + 1, hex) == 0)
                        return 1;
        }
        return 0;
}

struct stale_ctx {
        const struct name_list *present;
        int stale;
};

static int index_stale_cb(const tm_id *id, void *ud)
{
        struct stale_ctx *c = ud;

        if (!id_in_list(c->present, id))
                c->stale = 1;
        return 0;
}

struct snap_ids {
        tm_id *ids;
        size_t n, cap;
};

static int snap_collect_cb(const struct tm_snapshot *s, void *ud)
{
        struct snap_ids *l = ud;

        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 64;
                tm_id *p = realloc(l->ids, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                l->ids = p;
                l->cap = ncap;
        }
        l->ids[l->n++] = s->id;
        return 0;
}

static int refresh_locked(tm_repo *repo)
{
        struct name_list idx = { 0 }, snaps = { 0 };
        struct stale_ctx sc = { 0 };
        struct snap_ids known = { 0 };
        int r, in_tx = 0;

        r = tm_backend_list(repo->be, "index/", name_list_add, &idx);
        if (r < 0)
                goto out;
        r = tm_backend_list(repo->be, "snapshots/", name_list_add, &snaps);
        if (r < 0)
                goto out;
        r = tm_catalog_begin(repo->cat);
        if (r < 0)
                goto out;
        in_tx = 1;
        /* An index file that disappeared means a prune rewrote the index and
         * deleted packs: the blob locations we hold may point at them, so
         * start the location tables over. Rare, and cheap next to a prune. */
        sc.present = &idx;
        r = tm_catalog_index_foreach(repo->cat, index_stale_cb, &sc);
        if (r < 0)
                goto out;
        if (sc.stale) {
                char *keep = NULL;

                tm_log(TM_LOG_DEBUG, "index files were removed: reloading blob locations");
                tm_catalog_meta_get(repo->cat, "repository", &keep);
                r = tm_catalog_clear(repo->cat);
                if (r == 0)
                        r = tm_catalog_meta_set(repo->cat, "repository",
                                                keep ? keep : repo->id_hex);
                free(keep);
                if (r < 0)
                        goto out;
        }
        for (size_t i = 0; i < idx.n; i++) {
                tm_id id;

                if (name_to_id(idx.names[i], &id) < 0)
                        continue;
                r = tm_catalog_index_has(repo->cat, &id);
                if (r < 0)
                        goto out;
                if (r > 0)
                        continue;
                r = tm_repo__ingest_index(repo, &id);
                if (r == -ENOENT)
                        continue; /* removed by a concurrent prune since the listing */
                if (r < 0)
                        goto out;
        }
        /* snapshots: add new ones, drop forgotten ones */
        r = tm_catalog_snapshot_foreach(repo->cat, NULL, snap_collect_cb, &known);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < known.n; i++) {
                if (id_in_list(&snaps, &known.ids[i]))
                        continue;
                r = tm_catalog_snapshot_remove(repo->cat, &known.ids[i]);
                if (r < 0)
                        goto out;
        }
        for (size_t i = 0; i < snaps.n; i++) {
                struct tm_snapshot s = { 0 };
                tm_id id;

                if (name_to_id(snaps.names[i], &id) < 0)
                        continue;
                r = tm_catalog_snapshot_has(repo->cat, &id);
                if (r < 0)
                        goto out;
                if (r > 0)
                        continue;
                r = tm_repo_snapshot_load(repo, &id, &s);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        tm_log(TM_LOG_ERR, "snapshot '%s' cannot be read, skipped", snaps.names[i]);
                        continue;
                }
                r = tm_catalog_snapshot_add(repo->cat, &s);
                tm_snapshot_dispose(&s);
                if (r < 0)
                        goto out;
        }
        r = tm_catalog_commit(repo->cat);
        in_tx = 0;
out:
        if (in_tx)
                tm_catalog_rollback(repo->cat);
        free(known.ids);
        name_list_dispose(&idx);
        name_list_dispose(&snaps);
        return r;
}

int tm_repo_refresh(tm_repo *repo)
{
        int r;

        pthread_mutex_lock(&repo->lock);
        r = refresh_locked(repo);
        pthread_mutex_unlock(&repo->lock);
        return r;
}

int tm_repo_catalog_rebuild(tm_repo *repo)
{
        int r;

        pthread_mutex_lock(&repo->lock);
        tm_catalog_free(repo->cat);
        repo->cat = NULL;
        tm_catalog_destroy(repo->catalog_path);
        r = catalog_open(repo);
        if (r == 0)
                r = refresh_locked(repo);
        pthread_mutex_unlock(&repo->lock);
        return r;
}

/* ---- packs, blobs ---- */

void tm_repo_pack_name(const tm_id *pack_id, char *out, size_t n)
{
        char hex[TM_ID_HEX_LEN + 1];

        tm_id_hex(pack_id, hex);
        snprintf(out, n, "data/%.2s/%s", hex, hex);
}

int tm_repo_pack_save(tm_repo *repo, const tm_id *pack_id, uint8_t type, const tm_buf *file,
                      const struct tm_pack_entry *entries, size_t n)
{
        char name[128];

        /* The catalog learns about a pack only through an index file (or
         * adoption), so "in data/ but not in the catalog" always means "no
         * index file lists it": that is how interrupted backups are found. */
        (void)type;
        (void)entries;
        (void)n;
        tm_repo_pack_name(pack_id, name, sizeof(name));
        return tm_backend_put(repo->be, name, file->data, file->len);
}

int tm_repo_index_save(tm_repo *repo, const struct tm_index *idx, tm_id *ret_id)
{
        tm_buf file = TM_BUF_INIT(0);
        char name[128], hex[TM_ID_HEX_LEN + 1];
        tm_id id;
        int r;

        r = tm_index_encode(&repo->key, idx, &file);
        if (r < 0)
                goto out;
        tm_crypto_sha256(file.data, file.len, &id);
        tm_id_hex(&id, hex);
        snprintf(name, sizeof(name), "index/%s", hex);
        r = tm_backend_put(repo->be, name, file.data, file.len);
        if (r < 0)
                goto out;
        r = tm_catalog_begin(repo->cat);
        if (r < 0)
                goto out;
        for (size_t i = 0; r >= 0 && i < idx->n_packs; i++) {
                const struct tm_index_pack *p = &idx->packs[i];

                r = tm_catalog_pack_add(repo->cat, &p->pack_id, p->n ? p->entries[0].type : 0,
                                        p->pack_size);
                for (size_t k = 0; r >= 0 && k < p->n; k++)
                        r = tm_catalog_blob_add(repo->cat, &p->pack_id, &p->entries[k]);
        }
        if (r >= 0)
                r = tm_catalog_index_add(repo->cat, &id);
        /* a concurrent sync on another handle adopted the file we just
         * put before we committed: the rows it wrote are ours */
        if (r == -EEXIST)
                r = 0;
        if (r < 0) {
                tm_catalog_rollback(repo->cat);
                goto out;
        }
        r = tm_catalog_commit(repo->cat);
        if (r < 0)
                goto out;
        if (ret_id)
                *ret_id = id;
out:
        tm_buf_dispose(&file);
        return r;
}

int tm_repo_blob_has(tm_repo *repo, const tm_id *id)
{
        struct tm_pack_entry e;
        tm_id pack;
        int r = tm_catalog_blob_find(repo->cat, id, &pack, &e);

        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : 1;
}

static void sleep_ns(int64_t ns)
{
        struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/*
 * A pack in GLACIER / DEEP_ARCHIVE that is not restored: request the thaw,
 * then wait for it (CLI, API) or answer -EAGAIN at once (the filesystem,
 * which must not block a reader for hours), with a log line at most once a
 * minute per repository so a busy reader does not flood the log.
 */
static int read_archived(tm_repo *repo, const char *name, const struct tm_pack_entry *e,
                         tm_buf *sealed)
{
        int64_t poll = INT64_MAX, now;
        unsigned lvl = TM_TIER_COLD;
        int r, logged = 0;

        for (unsigned i = TM_TIER_COLD; i < TM_TIER_LEVELS; i++)
                if (repo->tiers.t[i].configured && repo->tiers.t[i].thaw_poll_ns < poll)
                        poll = repo->tiers.t[i].thaw_poll_ns;
        if (poll == INT64_MAX)
                poll = 60LL * 1000000000;
        {
                unsigned mask = 0;

                if (tm_backend_tier_where(repo->be, name, &mask) == 0 && mask)
                        for (lvl = 0; lvl < TM_TIER_LEVELS && !(mask & (1u << lvl)); lvl++)
                                ;
                if (lvl >= TM_TIER_LEVELS)
                        lvl = TM_TIER_COLD;
        }
        for (;;) {
                r = tm_backend_thaw(repo->be, name, NULL, 0);
                if (r < 0)
                        return tm_log_errno(TM_LOG_ERR, r, "cannot request the thaw of pack %s",
                                            name);
                if (r == 0) {
                        r = tm_backend_get_range(repo->be, name, e->offset, e->length, sealed);
                        if (r != -ENODATA)
                                return r;
                }
                now = tm_time_mono();
                if (repo->thaw_nowait) {
                        pthread_mutex_lock(&repo->lock);
                        if (!repo->thaw_logged || now - repo->thaw_logged >= 60LL * 1000000000) {
                                repo->thaw_logged = now;
                                logged = 1;
                        }
                        pthread_mutex_unlock(&repo->lock);
                        if (logged)
                                tm_log(TM_LOG_WARN,
                                       "pack %s is in the %s tier (archived): thaw requested "
                                       "(%s retrieval, expected %s); try again later",
                                       name, tm_tier_level_name(lvl),
                                       repo->tiers.t[lvl].retrieval,
                                       tm_tier_thaw_eta(lvl, repo->tiers.t[lvl].retrieval));
                        return -EAGAIN;
                }
                if (!logged) {
                        tm_log(TM_LOG_INFO,
                               "pack %s is in the %s tier (archived): thaw requested (%s "
                               "retrieval, expected %s); waiting, checking every %" PRId64 " s",
                               name, tm_tier_level_name(lvl), repo->tiers.t[lvl].retrieval,
                               tm_tier_thaw_eta(lvl, repo->tiers.t[lvl].retrieval),
                               poll / 1000000000);
                        logged = 1;
                }
                sleep_ns(poll);
        }
}

/* Verify and decompress one sealed blob read from pack name. */
static int blob_open_logged(tm_repo *repo, const char *name, const struct tm_pack_entry *e,
                            const uint8_t *sealed, size_t len, tm_buf *plain)
{
        char bhex[TM_ID_HEX_LEN + 1];
        int r = tm_blob_open(&repo->key, e, sealed, len, plain);

        if (r == -EBADMSG) {
                tm_id_hex(&e->id, bhex);
                tm_log(TM_LOG_ERR, "blob %s in pack '%s' fails verification", bhex, name);
        }
        return r;
}

/* Read span (one blob, or a run of them) of pack name, thawing if needed. */
static int pack_read_span(tm_repo *repo, const tm_id *pack_id, const char *name,
                          const struct tm_pack_entry *span, tm_buf *sealed)
{
        char bhex[TM_ID_HEX_LEN + 1];
        int r = tm_repo__packcache_get(repo, pack_id, span, sealed);

        if (r == 0)
                r = tm_backend_get_range(repo->be, name, span->offset, span->length, sealed);
        if (r == -ENODATA)
                r = read_archived(repo, name, span, sealed);
        if (r == -EBADMSG) {
                tm_id_hex(&span->id, bhex);
                tm_log(TM_LOG_ERR, "blob %s: pack '%s' is truncated", bhex, name);
        }
        return r < 0 ? r : 0;
}

int tm_repo_blob_load_at(tm_repo *repo, const tm_id *pack_id, const struct tm_pack_entry *e,
                         tm_buf *ret)
{
        tm_buf sealed = TM_BUF_INIT(TM_BLOB_MAX + 1024), plain = TM_BUF_INIT(TM_BLOB_MAX);
        char name[128];
        int r;

        tm_repo_pack_name(pack_id, name, sizeof(name));
        r = pack_read_span(repo, pack_id, name, e, &sealed);
        if (r < 0)
                goto out;
        r = blob_open_logged(repo, name, e, sealed.data, sealed.len, &plain);
        if (r < 0)
                goto out;
        tm_buf_move(ret, &plain);
out:
        tm_buf_dispose(&plain);
        tm_buf_dispose(&sealed);
        return r;
}

size_t tm_repo_blob_run_len(const struct tm_pack_entry *es, size_t n, size_t max_span,
                            size_t max_gap)
{
        uint64_t end;
        size_t i;

        if (n == 0)
                return 0;
        end = es[0].offset + es[0].length;
        for (i = 1; i < n; i++) {
                if (es[i].offset < end || es[i].offset - end > max_gap ||
                    es[i].offset + es[i].length - es[0].offset > max_span)
                        break;
                end = es[i].offset + es[i].length;
        }
        return i;
}

int tm_repo_blob_load_run(tm_repo *repo, const tm_id *pack_id, const struct tm_pack_entry *es,
                          size_t n, tm_repo_blob_fn fn, void *userdata)
{
        tm_buf sealed = TM_BUF_INIT(TM_BLOB_MAX + 1024), plain = TM_BUF_INIT(TM_BLOB_MAX);
        struct tm_pack_entry span;
        char name[128];
        uint64_t end;
        int r = 0;

        if (n == 0)
                return 0;
        span = es[0];
        end = es[0].offset + es[0].length;
        for (size_t i = 1; i < n; i++) {
                if (es[i].offset < end)
                        return -EINVAL;
                end = es[i].offset + es[i].length;
        }
        if (end - span.offset > UINT32_MAX)
                return -EINVAL;
        span.length = (uint32_t)(end - span.offset);
        tm_repo_pack_name(pack_id, name, sizeof(name));
        r = pack_read_span(repo, pack_id, name, &span, &sealed);
        for (size_t i = 0; i < n && r >= 0; i++) {
                r = blob_open_logged(repo, name, &es[i], sealed.data + (es[i].offset - span.offset),
                                     es[i].length, &plain);
                if (r >= 0)
                        r = fn(i, &plain, userdata);
        }
        tm_buf_dispose(&plain);
        tm_buf_dispose(&sealed);
        return r;
}

#define BLOB_COPIES_MAX 8

/* A blob may be stored twice: a fresh hot copy of an archived one. Read the
 * warmest copy, so recent snapshots never wait for a thaw. */
static int blob_find_warmest(tm_repo *repo, const tm_id *id, tm_id *ret_pack,
                             struct tm_pack_entry *ret)
{
        tm_id packs[BLOB_COPIES_MAX];
        struct tm_pack_entry es[BLOB_COPIES_MAX];
        size_t n = 0, best = 0;
        unsigned best_tier = TM_TIER_LEVELS + 1;
        int r;

        if (!tm_backend_is_tiered(repo->be))
                return tm_catalog_blob_find(repo->cat, id, ret_pack, ret);
        r = tm_catalog_blob_find_all(repo->cat, id, packs, es, BLOB_COPIES_MAX, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && n > 1; i++) {
                unsigned t = tm_tier_of_pack(repo, &packs[i]);

                if (t < best_tier) {
                        best_tier = t;
                        best = i;
                }
        }
        *ret_pack = packs[best];
        *ret = es[best];
        return 0;
}

int tm_repo_blob_locate(tm_repo *repo, const tm_id *id, tm_id *ret_pack,
                        struct tm_pack_entry *ret)
{
        return blob_find_warmest(repo, id, ret_pack, ret);
}

int tm_repo_blob_load(tm_repo *repo, const tm_id *id, tm_buf *ret)
{
        struct tm_pack_entry e;
        tm_id pack;
        int r = blob_find_warmest(repo, id, &pack, &e);

        if (r < 0)
                return r;
        return tm_repo_blob_load_at(repo, &pack, &e, ret);
}

struct dedup_ctx {
        tm_repo *repo;
        tm_catalog_blob_fn fn;
        void *ud;
        /* the locations of the current blob (rows come grouped by blob id) */
        tm_id blob, packs[BLOB_COPIES_MAX];
        struct tm_pack_entry es[BLOB_COPIES_MAX];
        size_t n;
        uint64_t archived_only;
};

static int dedup_flush(struct dedup_ctx *c)
{
        size_t warm = c->n;
        int r;

        for (size_t i = 0; i < c->n && warm == c->n; i++)
                if (tm_tier_of_pack(c->repo, &c->packs[i]) <= TM_TIER_WARM)
                        warm = i;
        if (c->n && warm == c->n)
                c->archived_only++;
        r = c->n && warm < c->n ? c->fn(&c->blob, &c->packs[warm], &c->es[warm], c->ud) : 0;
        c->n = 0;
        return r;
}

static int dedup_cb(const tm_id *blob_id, const tm_id *pack_id, const struct tm_pack_entry *e,
                    void *ud)
{
        struct dedup_ctx *c = ud;
        int r;

        if (c->n && tm_id_cmp(&c->blob, blob_id) != 0) {
                r = dedup_flush(c);
                if (r != 0)
                        return r;
        }
        c->blob = *blob_id;
        if (c->n < BLOB_COPIES_MAX) {
                c->packs[c->n] = *pack_id;
                c->es[c->n] = *e;
                c->n++;
        }
        return 0;
}

int tm_repo_blob_foreach_dedup(tm_repo *repo, tm_catalog_blob_fn fn, void *userdata,
                               uint64_t *ret_archived_only)
{
        struct dedup_ctx *c;
        int r;

        if (!repo || !fn)
                return -EINVAL;
        if (ret_archived_only)
                *ret_archived_only = 0;
        if (!tm_backend_is_tiered(repo->be))
                return tm_catalog_blob_foreach(repo->cat, fn, userdata);
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->repo = repo;
        c->fn = fn;
        c->ud = userdata;
        r = tm_catalog_blob_foreach(repo->cat, dedup_cb, c);
        if (r == 0)
                r = dedup_flush(c);
        if (ret_archived_only)
                *ret_archived_only = c->archived_only;
        free(c);
        return r;
}

int tm_repo_tree_load(tm_repo *repo, const tm_id *tree_id, struct tm_tree *ret)
{
        tm_buf b = TM_BUF_INIT(TM_BLOB_MAX);
        int r = tm_repo_blob_load(repo, tree_id, &b);

        if (r == 0)
                r = tm_tree_decode(b.data, b.len, ret);
        if (r == -EBADMSG) {
                char hex[TM_ID_HEX_LEN + 1];

                tm_id_hex(tree_id, hex);
                tm_log(TM_LOG_ERR, "tree %s cannot be decoded", hex);
        }
        tm_buf_dispose(&b);
        return r;
}

/* ---- snapshots ---- */

int tm_repo_snapshot_save(tm_repo *repo, struct tm_snapshot *s)
{
        tm_buf json = TM_BUF_INIT(TM_SNAPSHOT_MAX);
        tm_id id;
        int r;

        r = tm_snapshot_encode(s, &json);
        if (r < 0)
                goto out;
        r = tm_repo__put_sealed(repo, "snapshots", "tmsnapshot", json.data, json.len, &id);
        if (r < 0)
                goto out;
        s->id = id;
        r = tm_catalog_snapshot_add(repo->cat, s);
        if (r < 0) /* committed in the repository already; the catalog catches up later */
                r = 0;
out:
        tm_buf_dispose(&json);
        return r;
}

int tm_repo_snapshot_load(tm_repo *repo, const tm_id *id, struct tm_snapshot *ret)
{
        tm_buf plain = TM_BUF_INIT(TM_SNAPSHOT_MAX);
        struct tm_snapshot s = { 0 };
        int r;

        r = tm_repo__get_sealed(repo, "snapshots", "tmsnapshot", id, TM_SNAPSHOT_MAX, &plain);
        if (r < 0)
                goto out;
        r = tm_snapshot_decode(plain.data, plain.len, &s);
        if (r < 0)
                goto out;
        s.id = *id;
        *ret = s;
out:
        tm_buf_dispose(&plain);
        return r;
}

int tm_repo_snapshot_remove(tm_repo *repo, const tm_id *id)
{
        char name[128], hex[TM_ID_HEX_LEN + 1];
        int r;

        tm_id_hex(id, hex);
        snprintf(name, sizeof(name), "snapshots/%s", hex);
        r = tm_backend_remove(repo->be, name);
        if (r < 0 && r != -ENOENT)
                return r;
        tm_catalog_snapshot_remove(repo->cat, id);
        return 0;
}

struct snap_arr {
        struct tm_snapshot *a;
        size_t n, cap;
};

static int snap_arr_cb(const struct tm_snapshot *s, void *ud)
{
        struct snap_arr *l = ud;
        int r;

        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 32;
                struct tm_snapshot *p = realloc(l->a, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                l->a = p;
                l->cap = ncap;
        }
        r = tm_snapshot_copy(s, &l->a[l->n]);
        if (r < 0)
                return r;
        l->a[l->n].id = s->id;
        l->n++;
        return 0;
}

void tm_snapshot_array_free(struct tm_snapshot *a, size_t n)
{
        for (size_t i = 0; a && i < n; i++)
                tm_snapshot_dispose(&a[i]);
        free(a);
}

static int snap_time_cmp(const void *x, const void *y)
{
        const struct tm_snapshot *a = x, *b = y;

        if (a->time != b->time)
                return a->time < b->time ? -1 : 1;
        return tm_id_cmp(&a->id, &b->id);
}

int tm_repo_snapshot_list(tm_repo *repo, const char *component, struct tm_snapshot **ret,
                          size_t *ret_n)
{
        struct snap_arr l = { 0 };
        int r = tm_catalog_snapshot_foreach(repo->cat, component, snap_arr_cb, &l);

        if (r < 0) {
                tm_snapshot_array_free(l.a, l.n);
                return r;
        }
        if (l.n)
                qsort(l.a, l.n, sizeof(*l.a), snap_time_cmp);
        *ret = l.a;
        *ret_n = l.n;
        return 0;
}

int tm_repo_snapshot_find(tm_repo *repo, const char *spec, const char *component,
                          struct tm_snapshot *ret)
{
        struct tm_snapshot *a = NULL;
        size_t n = 0, match = SIZE_MAX, nmatch = 0;
        int r;

        if (!spec || !*spec)
                return -EINVAL;
        r = tm_repo_snapshot_list(repo, component, &a, &n);
        if (r < 0)
                return r;
        if (strcmp(spec, "latest") == 0) {
                if (n)
                        match = n - 1, nmatch = 1;
        } else if (spec[0] == '@') {
                int64_t t, prec;

                r = tm_time_parse(spec + 1, &t, &prec);
                if (r < 0)
                        goto out;
                for (size_t i = 0; i < n; i++)
                        if (a[i].time <= t + prec - 1)
                                match = i, nmatch = 1;
        } else {
                size_t len = strlen(spec);

                if (len > TM_ID_HEX_LEN || strspn(spec, "0123456789abcdef") != len) {
                        r = -EINVAL;
                        goto out;
                }
                for (size_t i = 0; i < n; i++) {
                        char hex[TM_ID_HEX_LEN + 1];

                        tm_id_hex(&a[i].id, hex);
                        if (strncmp(hex, spec, len) == 0)
                                match = i, nmatch++;
                }
        }
        if (nmatch == 0) {
                r = -ENOENT;
                goto out;
        }
        if (nmatch > 1) {
                r = -EEXIST;
                goto out;
        }
        r = tm_snapshot_copy(&a[match], ret);
        if (r == 0)
                ret->id = a[match].id;
out:
        tm_snapshot_array_free(a, n);
        return r;
}

/* ---- walking ---- */

static int walk_rec(tm_repo *repo, const tm_id *tree_id, char *path, size_t plen, size_t cap,
                    tm_repo_walk_fn fn, void *ud)
{
        struct tm_tree t = TM_TREE_INIT;
        int r = tm_repo_tree_load(repo, tree_id, &t);

        if (r < 0)
                return r;
        for (size_t i = 0; i < t.n; i++) {
                const struct tm_node *nd = &t.nodes[i];
                size_t nl = strlen(nd->name);

                if (plen + nl + 2 > cap) {
                        r = -ENAMETOOLONG;
                        break;
                }
                if (plen)
                        path[plen] = '/';
                memcpy(path + plen + (plen ? 1 : 0), nd->name, nl + 1);
                r = fn(path, nd, ud);
                if (r == 1 && nd->type == TM_NODE_DIR) {
                        r = 0;
                } else if (r != 0) {
                        break;
                } else if (nd->type == TM_NODE_DIR) {
                        r = walk_rec(repo, &nd->subtree, path, plen + nl + (plen ? 1 : 0), cap, fn,
                                     ud);
                        if (r != 0)
                                break;
                }
                path[plen] = 0;
        }
        path[plen] = 0;
        tm_tree_dispose(&t);
        return r;
}

int tm_repo_walk(tm_repo *repo, const tm_id *tree_id, tm_repo_walk_fn fn, void *userdata)
{
        char *path = malloc(65536);
        int r;

        if (!path)
                return -ENOMEM;
        path[0] = 0;
        r = walk_rec(repo, tree_id, path, 0, 65536, fn, userdata);
        free(path);
        return r;
}

int tm_repo_lookup_path(tm_repo *repo, const tm_id *root, const char *path, struct tm_node *ret)
{
        struct tm_node cur = { 0 };
        char *copy = strdup(path ? path : ""), *save = NULL, *tok;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        cur.type = TM_NODE_DIR;
        cur.mode = 0755;
        cur.subtree = *root;
        cur.name = strdup("/");
        if (!cur.name) {
                r = -ENOMEM;
                goto out;
        }
        for (tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                struct tm_tree t = TM_TREE_INIT;
                const struct tm_node *nd;

                if (strcmp(tok, ".") == 0)
                        continue;
                if (cur.type != TM_NODE_DIR || strcmp(tok, "..") == 0) {
                        r = -ENOENT;
                        goto out;
                }
                r = tm_repo_tree_load(repo, &cur.subtree, &t);
                if (r < 0)
                        goto out;
                nd = tm_tree_find(&t, tok);
                if (!nd) {
                        tm_tree_dispose(&t);
                        r = -ENOENT;
                        goto out;
                }
                tm_node_dispose(&cur);
                r = tm_node_copy(nd, &cur);
                tm_tree_dispose(&t);
                if (r < 0)
                        goto out;
        }
        *ret = cur;
        memset(&cur, 0, sizeof(cur));
out:
        tm_node_dispose(&cur);
        free(copy);
        return r;
}

/* ---- open / init ---- */

static int repo_new(const struct tm_repo_opts *opts, int create, tm_repo **ret)
{
        tm_repo *repo = calloc(1, sizeof(*repo));
        int r;

        if (!repo)
                return -ENOMEM;
        pthread_mutex_init(&repo->lock, NULL);
        pthread_mutex_init(&repo->pc_lock, NULL);
        repo->kdf = opts->kdf;
        repo->location = strdup(opts->location ? opts->location : "");
        if (!repo->location) {
                tm_repo_free(repo);
                return -ENOMEM;
        }
        if (!opts->location || !*opts->location) {
                tm_repo_free(repo);
                return -EINVAL;
        }
        {
                char err[512];

                r = tm_tier_set_load(opts->config, &repo->tiers, err, sizeof(err));
                if (r < 0) {
                        tm_log(TM_LOG_ERR, "%s", err[0] ? err : "cannot read the [tier.*] sections");
                        tm_repo_free(repo);
                        return r;
                }
        }
        repo->thaw_nowait = opts->thaw_nowait;
        r = tm_tier_backend_open(&repo->tiers, opts->location, create, &repo->be);
        if (r < 0) {
                tm_repo_free(repo);
                return r;
        }
        *ret = repo;
        return 0;
}

/* The store refused our credentials: say so, rather than let it read as a
 * wrong passphrase (the caller maps -EACCES to that). */
static int storage_denied(tm_repo *repo, int r)
{
        if (r != -EACCES)
                return r;
        tm_log(TM_LOG_ERR,
               "the storage at '%s' refused access: check its credentials (for S3: "
               "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
               repo->location);
        return -EPERM;
}

static int repo_finish_open(tm_repo *repo, const struct tm_repo_opts *opts)
{
        int r;

        r = tm_chunker_new(&repo->cparams, repo->gear_seed, &repo->chunker);
        if (r < 0)
                return r;
        if (opts->catalog_path && *opts->catalog_path)
                repo->catalog_path = strdup(opts->catalog_path);
        else
                catalog_default_path(repo->id_hex, &repo->catalog_path);
        if (!repo->catalog_path)
                return -ENOMEM;
        r = catalog_open(repo);
        if (r < 0)
                return r;
        return tm_repo_refresh(repo);
}

int tm_repo_init(const struct tm_repo_opts *opts, tm_repo **ret)
{
        tm_repo *repo = NULL;
        tm_buf cfg = TM_BUF_INIT(CONFIG_MAX);
        uint8_t rid[TM_ID_LEN];
        uint64_t sz;
        int r;

        r = tm_chunker_params_check(&opts->chunker);
        if (r < 0)
                return r;
        if (opts->compression_level < 0 || opts->compression_level > 19)
                return -EINVAL;
        r = repo_new(opts, 1, &repo);
        if (r < 0)
                return r;
        r = tm_backend_head(repo->be, "config", &sz);
        if (r == 0) {
                r = -EEXIST;
                goto out;
        }
        if (r == -EACCES) {
                r = storage_denied(repo, r);
                goto out;
        }
        repo->cparams = opts->chunker;
        repo->level = opts->compression_level;
        r = tm_crypto_random(&repo->key, sizeof(repo->key));
        if (r < 0)
                goto out;
        r = tm_crypto_random(repo->gear_seed, sizeof(repo->gear_seed));
        if (r < 0)
                goto out;
        r = tm_crypto_random(rid, sizeof(rid));
        if (r < 0)
                goto out;
        tm_hex_encode(rid, sizeof(rid), repo->id_hex);
        /* key first: a config without a key would be a repository nobody can open */
        r = key_write(repo, opts->password, opts->password_len, &repo->key_id);
        if (r < 0)
                goto out;
        r = config_encode(repo, &cfg);
        if (r < 0)
                goto out;
        {
                tm_buf sealed = TM_BUF_INIT(0);

                r = tm_crypto_seal(repo->key.enc, "tmconfig", 8, cfg.data, cfg.len, &sealed);
                if (r == 0)
                        r = tm_backend_put(repo->be, "config", sealed.data, sealed.len);
                tm_buf_dispose(&sealed);
        }
        if (r < 0)
                goto out;
        r = repo_finish_open(repo, opts);
        if (r < 0)
                goto out;
        *ret = repo;
        repo = NULL;
out:
        tm_buf_dispose(&cfg);
        tm_repo_free(repo);
        return r;
}

int tm_repo_open(const struct tm_repo_opts *opts, tm_repo **ret)
{
        tm_repo *repo = NULL;
        struct name_list keys = { 0 };
        tm_buf raw = TM_BUF_INIT(CONFIG_MAX), cfg = TM_BUF_INIT(CONFIG_MAX);
        int r, found = 0;

        r = repo_new(opts, 0, &repo);
        if (r < 0)
                return r;
        r = tm_backend_get(repo->be, "config", CONFIG_MAX, &raw);
        if (r < 0) {
                r = storage_denied(repo, r);
                goto out;
        }
        r = tm_backend_list(repo->be, "keys/", name_list_add, &keys);
        if (r < 0) {
                r = storage_denied(repo, r);
                goto out;
        }
        for (size_t i = 0; i < keys.n && !found; i++) {
                r = key_try(repo, keys.names[i], opts->password, opts->password_len);
                if (r == 0) {
                        found = 1;
                        name_to_id(keys.names[i], &repo->key_id);
                }
        }
        if (!found) {
                r = -EACCES;
                goto out;
        }
        r = tm_crypto_open(repo->key.enc, "tmconfig", 8, raw.data, raw.len, &cfg);
        if (r < 0) {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG, "repository config at '%s' is corrupt",
                                 repo->location);
                goto out;
        }
        r = config_decode(repo, &cfg);
        if (r < 0) {
                tm_log(TM_LOG_ERR, "repository config at '%s' is malformed", repo->location);
                goto out;
        }
        r = repo_finish_open(repo, opts);
        if (r < 0)
                goto out;
        *ret = repo;
        repo = NULL;
out:
        name_list_dispose(&keys);
        tm_buf_dispose_secret(&cfg);
        tm_buf_dispose(&raw);
        tm_repo_free(repo);
        return r;
}

void tm_repo_free(tm_repo *repo)
{
        if (!repo)
                return;
        tm_catalog_free(repo->cat);
        tm_chunker_free(repo->chunker);
        tm_backend_free(repo->be);
        tm_tier_set_dispose(&repo->tiers);
        tm_key_wipe(&repo->key);
        explicit_bzero(repo->gear_seed, sizeof(repo->gear_seed));
        free(repo->catalog_path);
        free(repo->location);
        tm_repo__packcache_dispose(repo);
        pthread_mutex_destroy(&repo->pc_lock);
        pthread_mutex_destroy(&repo->lock);
        free(repo);
}

const char *tm_repo_id(const tm_repo *repo)
{
        return repo->id_hex;
}

const char *tm_repo_location(const tm_repo *repo)
{
        return repo->location;
}

const struct tm_tier_set *tm_repo_tiers(const tm_repo *repo)
{
        return &repo->tiers;
}

tm_backend *tm_repo_backend(tm_repo *repo)
{
        return repo->be;
}

tm_catalog *tm_repo_catalog(tm_repo *repo)
{
        return repo->cat;
}

const tm_key *tm_repo_key(const tm_repo *repo)
{
        return &repo->key;
}

const tm_chunker *tm_repo_chunker(const tm_repo *repo)
{
        return repo->chunker;
}

int tm_repo_compression_level(const tm_repo *repo)
{
        return repo->level;
}

const char *tm_repo_catalog_path(const tm_repo *repo)
{
        return repo->catalog_path;
}
