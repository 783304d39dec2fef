/*
 * Logging for the library. Each file defines UPG_LOG_PREFIX ("uffd: ")
 * before including this header; the format must be a string literal, which
 * the prefix is pasted onto. Only errors and warnings reach the sink by
 * default; the fault path counts instead of logging.
 */
#ifndef UPG_LOG_H
#define UPG_LOG_H

#ifndef UPG_LOG_PREFIX
#define UPG_LOG_PREFIX ""
#endif

enum upg_log_level { UPG_LOG_ERR, UPG_LOG_WARN, UPG_LOG_INFO, UPG_LOG_DBG };

/* Raise the level that reaches the sink (UPAGER_VERBOSE sets INFO). */
void upg_log_set_level(enum upg_log_level level);

void upg_log(enum upg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define upg_err(...)	upg_log(UPG_LOG_ERR, UPG_LOG_PREFIX __VA_ARGS__)
#define upg_warn(...)	upg_log(UPG_LOG_WARN, UPG_LOG_PREFIX __VA_ARGS__)
#define upg_info(...)	upg_log(UPG_LOG_INFO, UPG_LOG_PREFIX __VA_ARGS__)
#define upg_dbg(...)	upg_log(UPG_LOG_DBG, UPG_LOG_PREFIX __VA_ARGS__)

#endif
