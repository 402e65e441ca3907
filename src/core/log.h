/* log.h — leveled logging to stderr with timestamps. */
#ifndef EMX_CORE_LOG_H
#define EMX_CORE_LOG_H

/* emx__log_set_level sets the process-wide threshold (EMX_LOG_*). */
void emx__log_set_level(int level);

/* emx__log writes one line to stderr if level <= the threshold. */
void emx__log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
