# rlayer: hints added to error messages. Sourced by runtime.R only when an error needs one.

# The runtime starts R with base alone attached (R_DEFAULT_PACKAGES=base: utils, stats and
# methods cost cold-start time), so code written against an interactive R can miss
# head(), median() or setClass(). Returns "" when the function is in none of them.
missing_function_hint <- function(message) {
  fn <- regmatches(message, regexec("could not find function \"([^\"]+)\"", message))[[1L]]
  if (length(fn) < 2L) return("")
  fn <- fn[[2L]]
  attached <- sub("^package:", "", search())
  for (pkg in c("utils", "stats", "methods", "graphics", "grDevices", "datasets")) {
    if (pkg %in% attached) next
    # The package's namespace is loaded (not attached) to look: an error path only.
    found <- tryCatch(exists(fn, envir = asNamespace(pkg), inherits = FALSE),
                      error = function(e) FALSE)
    if (found) {
      return(sprintf(paste0(
        " (%1$s() is in package %2$s, which the runtime does not attach: it starts R ",
        "with R_DEFAULT_PACKAGES=base for speed. Call %2$s::%1$s(), add library(%2$s) ",
        "to the handler file, or set the function's environment variable ",
        "R_DEFAULT_PACKAGES, e.g. to base,%2$s)"), fn, pkg))
    }
  }
  ""
}
