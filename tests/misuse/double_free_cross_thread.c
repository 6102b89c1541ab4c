/* Misuse case: thread A allocates, thread B frees the block (a remote
 * free: it goes back to A's slab through the atomic list), then main
 * frees it again after joining B.  A stays alive and idle throughout, so
 * the block is never collected by its owner in between: the remote path
 * itself must notice the second free. */
#include <pthread.h>
#include <stdlib.h>

static void *volatile hidden;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int allocated, finished;

__attribute__((noinline)) static void release(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    free(p);
}

static void *thread_a(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    hidden = malloc(48);
    allocated = 1;
    pthread_cond_broadcast(&cond);
    while (!finished)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *thread_b(void *arg)
{
    (void)arg;
    release(hidden);
    return NULL;
}

int main(void)
{
    pthread_t a, b;

    if (pthread_create(&a, NULL, thread_a, NULL) != 0)
        return 2;
    pthread_mutex_lock(&lock);
    while (!allocated)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    if (hidden == NULL)
        return 2;

    if (pthread_create(&b, NULL, thread_b, NULL) != 0 || pthread_join(b, NULL) != 0)
        return 2;
    release(hidden);

    /* Only reached if the double free went unnoticed. */
    pthread_mutex_lock(&lock);
    finished = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(a, NULL);
    return 0;
}
