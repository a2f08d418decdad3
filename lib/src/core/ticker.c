#include "core/ticker.h"

#include <errno.h>
#include <time.h>

#include <tidemark/time.h>

static void *ticker_main(void *arg)
{
        struct tm_ticker *t = arg;

        pthread_mutex_lock(&t->mu);
        while (!t->stop) {
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += t->interval_ns / TM_NSEC_PER_SEC;
                ts.tv_nsec += t->interval_ns % TM_NSEC_PER_SEC;
                if (ts.tv_nsec >= TM_NSEC_PER_SEC) {
                        ts.tv_sec++;
                        ts.tv_nsec -= TM_NSEC_PER_SEC;
                }
                pthread_cond_timedwait(&t->cv, &t->mu, &ts);
                if (t->stop)
                        break;
                /* the callback runs unlocked: stopping never waits on it */
                pthread_mutex_unlock(&t->mu);
                t->fn(t->userdata);
                pthread_mutex_lock(&t->mu);
        }
        pthread_mutex_unlock(&t->mu);
        return NULL;
}

int tm_ticker_start(struct tm_ticker *t, int64_t interval_ns, void (*fn)(void *), void *userdata)
{
        t->interval_ns = interval_ns;
        t->fn = fn;
        t->userdata = userdata;
        t->stop = 0;
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
                pthread_mutex_destroy(&t->mu);
                pthread_cond_destroy(&t->cv);
                return -EAGAIN;
        }
        t->started = 1;
        return 0;
}

void tm_ticker_stop(struct tm_ticker *t)
{
        if (!t || !t->started)
                return;
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        t->started = 0;
}
