/*
 * The owner of one TCP socket, asked of the kernel by its four-tuple (Linux NETLINK_SOCK_DIAG,
 * an exact SOCK_DIAG_BY_FAMILY lookup): what src/forward/peer-owner.ts otherwise finds by reading
 * /proc/self/net/tcp{,6}, whose cost grows with every socket of the namespace (time-wait rows
 * included). One request, one answer, a socket per call (no state shared between threads).
 *
 *   lookup(family: 4 | 6, local: Uint8Array(4|16), localPort, remote: Uint8Array(4|16), remotePort)
 *     -> [uid, inode, state] of the socket whose local end is local:localPort and whose remote
 *        end is remote:remotePort, or null when the kernel has none (ENOENT).
 *   Throws (code ERR_SOCK_DIAG, message with errno) when netlink itself fails, e.g. a seccomp
 *   filter or systemd's RestrictAddressFamilies= without AF_NETLINK: the caller falls back.
 *
 * The answer's four-tuple is compared with the question's, so a socket the kernel's lookup
 * would also have matched (a listener on that port) is never taken for the connecting one.
 */
#include <node_api.h>

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char message[128];
  snprintf(message, sizeof message, "sock_diag %s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_SOCK_DIAG", message);
  return NULL;
}

static napi_value bad_argument(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_SOCK_DIAG_ARGUMENT", message);
  return NULL;
}

static int get_address(napi_env env, napi_value value, size_t want, uint8_t *out) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = NULL;
  napi_value buffer;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &buffer, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array || length != want) return 0;
  memcpy(out, data, want);
  return 1;
}

static int get_port(napi_env env, napi_value value, uint16_t *out) {
  uint32_t port;
  if (napi_get_value_uint32(env, value, &port) != napi_ok || port > 65535) return 0;
  *out = (uint16_t)port;
  return 1;
}

static napi_value lookup(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) {
    return bad_argument(env, "lookup(family, local, localPort, remote, remotePort)");
  }
  uint32_t family;
  if (napi_get_value_uint32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6)) {
    return bad_argument(env, "lookup: family must be 4 or 6");
  }
  size_t bytes = family == 4 ? 4 : 16;
  uint8_t local[16], remote[16];
  uint16_t local_port, remote_port;
  if (!get_address(env, argv[1], bytes, local) || !get_address(env, argv[3], bytes, remote)) {
    return bad_argument(env, "lookup: addresses must be Uint8Arrays of 4 (family 4) or 16 (family 6) bytes");
  }
  if (!get_port(env, argv[2], &local_port) || !get_port(env, argv[4], &remote_port)) return bad_argument(env, "lookup: ports are 0-65535");

  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } request;
  memset(&request, 0, sizeof request);
  request.nlh.nlmsg_len = sizeof request;
  request.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.nlh.nlmsg_flags = NLM_F_REQUEST;
  request.nlh.nlmsg_seq = 1;
  request.req.sdiag_family = family == 4 ? AF_INET : AF_INET6;
  request.req.sdiag_protocol = IPPROTO_TCP;
  request.req.idiag_states = ~0U;
  request.req.id.idiag_sport = htons(local_port);
  request.req.id.idiag_dport = htons(remote_port);
  memcpy(request.req.id.idiag_src, local, bytes);
  memcpy(request.req.id.idiag_dst, remote, bytes);
  request.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return fail(env, "socket", errno);
  /* The kernel answers within the send; the timeout only bounds a kernel that does not. */
  struct timeval timeout = {.tv_sec = 1, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    int err = errno;
    close(fd);
    return fail(env, "send", err);
  }
  /* Aligned for the headers read out of it. */
  long answer[2048 / sizeof(long)];
  ssize_t got;
  do {
    got = recv(fd, answer, sizeof answer, 0);
  } while (got < 0 && errno == EINTR);
  int recv_errno = errno;
  close(fd);
  if (got < 0) return fail(env, "recv", recv_errno);

  napi_value result;
  napi_get_null(env, &result);
  size_t left = (size_t)got;
  for (struct nlmsghdr *h = (struct nlmsghdr *)answer; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return fail(env, "answer", EBADMSG);
      int err = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (err == 0 || err == ENOENT) return result;
      return fail(env, "lookup", err);
    }
    if (h->nlmsg_type == NLMSG_DONE) return result;
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) continue;
    struct inet_diag_msg *m = (struct inet_diag_msg *)NLMSG_DATA(h);
    if (m->idiag_family != request.req.sdiag_family || m->id.idiag_sport != request.req.id.idiag_sport ||
        m->id.idiag_dport != request.req.id.idiag_dport || memcmp(m->id.idiag_src, local, bytes) != 0 ||
        memcmp(m->id.idiag_dst, remote, bytes) != 0) {
      continue;
    }
    napi_value triple[3];
    napi_create_uint32(env, m->idiag_uid, &triple[0]);
    napi_create_uint32(env, m->idiag_inode, &triple[1]);
    napi_create_uint32(env, m->idiag_state, &triple[2]);
    napi_create_array_with_length(env, 3, &result);
    for (uint32_t i = 0; i < 3; i++) napi_set_element(env, result, i, triple[i]);
    return result;
  }
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "lookup", NAPI_AUTO_LENGTH, lookup, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "lookup", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
