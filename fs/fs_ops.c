/*
 * The adapters: each fs_op_*() calls its fs_do_*() and replies exactly once
 * on every path. No lock is held here at all, so none is held across a
 * reply.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs.h"

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
        /* large kernel read-ahead: blobs are ~1 MiB and loaded whole */
        conn->max_readahead = 1024 * 1024;
        if (conn->capable & FUSE_CAP_ASYNC_READ)
                conn->want |= FUSE_CAP_ASYNC_READ;
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        struct fs *fs = fuse_req_userdata(req);
        struct fuse_entry_param e;
        int r;

        r = fs_do_lookup(fs, parent, name, &e); /* +1 nlookup on success */
        if (r == -ENOENT && e.entry_timeout > 0) {
                e.ino = 0; /* a negative entry the kernel may cache */
                fuse_reply_entry(req, &e);
        } else if (r < 0) {
                fuse_reply_err(req, -r);
        } else {
                fuse_reply_entry(req, &e);
        }
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
        fs_do_forget(fuse_req_userdata(req), ino, nlookup);
        fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
        struct fs *fs = fuse_req_userdata(req);

        for (size_t i = 0; i < count; i++)
                fs_do_forget(fs, forgets[i].ino, forgets[i].nlookup);
        fuse_reply_none(req);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct stat st;
        double ttl;
        int r;

        r = fs_do_getattr(fuse_req_userdata(req), ino, &st, &ttl);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_attr(req, &st, ttl);
}

static void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
        char *target = NULL;
        int r;

        r = fs_do_readlink(fuse_req_userdata(req), ino, &target);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_readlink(req, target);
        free(target);
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct fs_dir *d = NULL;
        int r;

        r = fs_do_opendir(fuse_req_userdata(req), ino, &d);
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        fi->fh = (uint64_t)(uintptr_t)d;
        fi->cache_readdir = 0;
        if (fuse_reply_open(req, fi) == -ENOENT)
                fs_dir_free(d); /* the opener was interrupted: no releasedir */
}

typedef int (*fs_readdir_fn)(struct fs *fs, fuse_req_t req, struct fs_dir *d, off_t off, char *buf,
                             size_t size, size_t *ret_len);

/* readdir and readdirplus differ only in the logic function they run. */
static void reply_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
                          fs_readdir_fn fn)
{
        struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
        size_t len = 0;
        char *buf;
        int r;

        buf = malloc(size ? size : 1);
        if (!buf) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        r = fn(fuse_req_userdata(req), req, d, off, buf, size, &len);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_buf(req, buf, len);
        free(buf);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
        reply_readdir(req, size, off, fi, fs_do_readdir);
}

static void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                              struct fuse_file_info *fi)
{
        reply_readdir(req, size, off, fi, fs_do_readdirplus);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        fs_dir_free((struct fs_dir *)(uintptr_t)fi->fh);
        fuse_reply_err(req, 0);
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct fs *fs = fuse_req_userdata(req);
        struct fs_file *f = NULL;
        int r;

        r = fs_do_open(fs, ino, fi->flags, &f);
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        fi->fh = (uint64_t)(uintptr_t)f;
        fi->keep_cache = 1; /* the contents never change */
        if (fuse_reply_open(req, fi) == -ENOENT)
                fs_do_release(fs, f);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
        struct fs *fs = fuse_req_userdata(req);
        struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;
        struct fs_read_seg *segs = NULL;
        struct fuse_bufvec *bv = NULL;
        size_t n = 0;
        int r;

        r = off < 0 ? -EINVAL : fs_do_read_segs(fs, f, (uint64_t)off, size, &segs, &n);
        if (r == 0 && n > 0) {
                /* straight from the cached blobs (held, not locked) to the kernel */
                bv = malloc(sizeof(*bv) + (n - 1) * sizeof(bv->buf[0]));
                if (!bv)
                        r = -ENOMEM;
        }
        if (r < 0) {
                fuse_reply_err(req, -r);
        } else if (n == 0) {
                fuse_reply_buf(req, NULL, 0);
        } else {
                *bv = (struct fuse_bufvec){ .count = n };
                for (size_t i = 0; i < n; i++)
                        bv->buf[i] = (struct fuse_buf){ .size = segs[i].len,
                                                        .mem = (void *)segs[i].p,
                                                        .fd = -1 };
                fuse_reply_data(req, bv, 0);
        }
        free(bv);
        fs_read_segs_free(fs, segs, n);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        fs_do_release(fuse_req_userdata(req), (struct fs_file *)(uintptr_t)fi->fh);
        fuse_reply_err(req, 0);
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
        size_t len = 0;
        char *buf = NULL;
        int r = 0;

        if (size > 0 && !(buf = malloc(size)))
                r = -ENOMEM;
        if (r == 0)
                r = fs_do_getxattr(fuse_req_userdata(req), ino, name, buf, size, &len);
        if (r < 0)
                fuse_reply_err(req, -r);
        else if (size == 0)
                fuse_reply_xattr(req, len);
        else
                fuse_reply_buf(req, buf, len);
        free(buf);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
        size_t len = 0;
        char *buf = NULL;
        int r = 0;

        if (size > 0 && !(buf = malloc(size)))
                r = -ENOMEM;
        if (r == 0)
                r = fs_do_listxattr(fuse_req_userdata(req), ino, buf, size, &len);
        if (r < 0)
                fuse_reply_err(req, -r);
        else if (size == 0)
                fuse_reply_xattr(req, len);
        else
                fuse_reply_buf(req, buf, len);
        free(buf);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
        struct statvfs st;
        int r;

        r = fs_do_statfs(fuse_req_userdata(req), &st);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_statfs(req, &st);
}

/* No write operation is in the table: libfuse answers them with ENOSYS, and
 * the read-only mount stops most before they get here. */
const struct fuse_lowlevel_ops fs_ops = {
        .init = fs_op_init,
        .lookup = fs_op_lookup,
        .forget = fs_op_forget,
        .forget_multi = fs_op_forget_multi,
        .getattr = fs_op_getattr,
        .readlink = fs_op_readlink,
        .opendir = fs_op_opendir,
        .readdir = fs_op_readdir,
        .readdirplus = fs_op_readdirplus,
        .releasedir = fs_op_releasedir,
        .open = fs_op_open,
        .read = fs_op_read,
        .release = fs_op_release,
        .getxattr = fs_op_getxattr,
        .listxattr = fs_op_listxattr,
        .statfs = fs_op_statfs,
};
