// What the C++ sides of both plugins share (torch_bridge.cpp, faiss_bridge.cpp): recording an error
// through the host's vfail, so the message lands in the caller's jaclip_last_error(). Each plugin's
// entry point sets g_vfail from its host table. Header-only: each plugin is its own library.
#ifndef JACLIP_BACKEND_BRIDGE_HPP
#define JACLIP_BACKEND_BRIDGE_HPP

#include "common/internal.h"

#include <cstdarg>

namespace {

jaclip_status (*g_vfail)(jaclip_status status, const char *fmt, va_list ap);

jaclip_status fail(jaclip_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
jaclip_status fail(jaclip_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_vfail(status, fmt, ap);
    va_end(ap);
    return status;
}

} // namespace

#endif
