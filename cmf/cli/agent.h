/* cmf agent: keeps a job's resolved client configuration in a file of its pod (init container or sidecar). */
#ifndef CMF_CLI_AGENT_H
#define CMF_CLI_AGENT_H

/* Exit statuses of `cmf agent` (sysexits.h values; README.md documents them). */
enum {
	CMF_AGENT_EXIT_OK = 0,          /* --once wrote the file; the sidecar stopped on SIGTERM/SIGINT */
	CMF_AGENT_EXIT_USAGE = 64,      /* EX_USAGE: bad command line or CMF_AGENT_* variable */
	CMF_AGENT_EXIT_DATAERR = 65,    /* EX_DATAERR: 404, 409, 422 (or another 4xx): the request cannot succeed */
	CMF_AGENT_EXIT_NOINPUT = 66,    /* EX_NOINPUT: the token file cannot be read */
	CMF_AGENT_EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: cmf unreachable or 5xx after the bounded retries */
	CMF_AGENT_EXIT_SOFTWARE = 70,   /* EX_SOFTWARE: internal error (out of memory, libcurl set-up) */
	CMF_AGENT_EXIT_CANTCREAT = 73,  /* EX_CANTCREAT: --out cannot be written */
	CMF_AGENT_EXIT_NOPERM = 77,     /* EX_NOPERM: 401 or 403 */
	CMF_AGENT_EXIT_STOPPED = 143,   /* 128 + SIGTERM: --once stopped by a signal before the file was written */
};

/*
 * Run `cmf agent` with the arguments after the subcommand (argv borrowed, not modified). Settings come
 * from the options and, for options not given, from CMF_AGENT_* environment variables. Returns one of
 * the CMF_AGENT_EXIT_* statuses. SIGTERM, SIGINT and SIGPIPE are blocked or ignored in the calling
 * thread for the duration (the agent is the whole process); the bearer token is read from the file
 * only, never from argv or the environment, and is never logged.
 */
int cmf_agent_main(int argc, char **argv);

#endif
