/* httpc.h - HTTP client (httpc.c) for CLI -> manager and manager <-> agent. */
#ifndef CVIRT_HTTPC_H
#define CVIRT_HTTPC_H

#include <stddef.h>
#include <jansson.h>

#define HTTPC_RESP_MAX (64 * 1024 * 1024)

struct httpc_resp {
	long	 status;	/* HTTP status, 0 when no response */
	char	*body;		/* NUL-terminated, owned */
	size_t	 len;
	json_t	*json;		/* parsed body when it was JSON, owned */
	char	 err[256];	/* transport error or the server's "error" */
};

/* Any status is a success here (0); -1 only when no HTTP answer came
 * within timeout_ms (connecting takes at most 5 s of it). Thread-safe.
 * resp must be released with httpc_resp_free. body may be NULL. */
int	httpc_request(const char *method, const char *url, const char *token,
	    json_t *body, long timeout_ms, struct httpc_resp *resp);
void	httpc_resp_free(struct httpc_resp *resp);

/* What a request may ask beyond httpc_request's (all may be NULL). */
struct httpc_opts {
	/* https: the server's certificate must be this host's
	 * (tls_tunnel_config's expect_name and expect_ou, tls.h): checked
	 * after the handshake, before any byte of the request is sent. */
	const char	*expect_name;
	const char	*expect_ou;
	const char	*source;	/* numeric IP to connect from */
	/* A streamed body instead of JSON (body then NULL): body_len bytes
	 * (application/octet-stream) that body_read yields, as read(2)
	 * does (>0 bytes, 0 at an early end, -1 an error: the request is
	 * then cut short). body_arg is passed through. */
	int		(*body_read)(void *arg, void *buf, size_t n);
	void		*body_arg;
	long long	 body_len;
};
/* httpc_request with opts (NULL: none). */
int	httpc_request_opts(const char *method, const char *url,
	    const char *token, json_t *body, long timeout_ms,
	    const struct httpc_opts *opts, struct httpc_resp *resp);
/* Extra trust for https: CA file (NULL for the system store). */
void	httpc_set_cafile(const char *path);
/* Client certificate and key (PEM files) for https, or NULL. The strings
 * must outlive every request. */
void	httpc_set_client_cert(const char *cert, const char *key);

#endif
