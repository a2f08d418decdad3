#pragma once
/* A thread that calls fn(userdata) every interval until stopped: the
 * progress reports of backup, restore and check. Internal to lib/. */
#include <pthread.h>
#include <stdint.h>

struct tm_ticker {
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int64_t interval_ns;
        void (*fn)(void *userdata);
        void *userdata;
        int stop, started;
};

/* Start ticking. Returns 0 or -EAGAIN (no thread: the caller goes on
 * without progress). */
int tm_ticker_start(struct tm_ticker *t, int64_t interval_ns, void (*fn)(void *), void *userdata);
/* Stop and join; safe on a ticker that never started (zeroed). */
void tm_ticker_stop(struct tm_ticker *t);
