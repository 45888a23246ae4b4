# Installs packages from a CRAN-like repository into one library, compiled against this R.
# Everything comes from the environment (validated by common.sh), never from code pasted
# together in the shell:
#   RLAYER_PKG_TARGET  library to install into
#   RLAYER_PKG_LIST    space-separated names, each optionally pinned as name==version
#   RLAYER_CRAN_REPO   repository URL (https:// or file://)
#   RLAYER_JOBS        parallel package installs
# Exits non-zero, with R's own messages, if any requested package is not installed after:
# install.packages() only warns on failure, which would otherwise yield a layer without it.

target <- Sys.getenv("RLAYER_PKG_TARGET")
specs <- strsplit(trimws(Sys.getenv("RLAYER_PKG_LIST")), " +")[[1]]
repo <- sub("/+$", "", Sys.getenv("RLAYER_CRAN_REPO"))
jobs <- max(1L, as.integer(Sys.getenv("RLAYER_JOBS", "1")), na.rm = TRUE)
stopifnot(nzchar(target), nzchar(repo), length(specs) > 0L)

dir.create(target, recursive = TRUE, showWarnings = FALSE)
.libPaths(c(target, .Library))
options(repos = c(CRAN = repo), warn = 1)
Sys.setenv(MAKEFLAGS = paste0("-j", jobs))
install_opts <- c("--no-docs", "--no-html", "--no-multiarch")
deps_kinds <- c("Depends", "Imports", "LinkingTo")

problems <- character()
note <- function(msg) {
  problems <<- c(problems, msg)
  message("rlayer: ", msg)
}
# Keep install.packages()'s warnings (failed compiles, unavailable packages): they are the
# reason to report when a package is missing afterwards.
install <- function(...) {
  withCallingHandlers(
    utils::install.packages(...),
    warning = function(w) {
      note(conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
}

parsed <- lapply(specs, function(s) {
  parts <- strsplit(s, "==", fixed = TRUE)[[1]]
  list(name = parts[1], version = if (length(parts) > 1) parts[2] else NA_character_)
})
names(parsed) <- vapply(parsed, `[[`, "", "name")

available <- utils::available.packages(repos = repo, type = "source")
from_repo <- character()
archived <- list()
for (p in parsed) {
  if (!p$name %in% rownames(available) && is.na(p$version)) {
    note(sprintf("package '%s' is not available from %s", p$name, repo))
  } else if (is.na(p$version) || (p$name %in% rownames(available) &&
    available[p$name, "Version"] == p$version)) {
    from_repo <- c(from_repo, p$name)
  } else {
    archived[[p$name]] <- p
  }
}

if (length(from_repo)) {
  install(from_repo,
    lib = target, repos = repo, type = "source", dependencies = deps_kinds,
    INSTALL_opts = install_opts, Ncpus = jobs, quiet = FALSE
  )
}

# A pinned version that is not the repository's current one: CRAN keeps it in Archive/.
for (p in archived) {
  url <- sprintf("%s/src/contrib/Archive/%s/%s_%s.tar.gz", repo, p$name, p$name, p$version)
  dest <- file.path(tempdir(), basename(url))
  ok <- tryCatch(
    {
      utils::download.file(url, dest, quiet = TRUE, mode = "wb")
      TRUE
    },
    error = function(e) FALSE,
    warning = function(w) FALSE
  )
  if (!ok) {
    note(sprintf("package '%s' version %s is not available from %s", p$name, p$version, repo))
    next
  }
  desc_file <- utils::untar(dest, files = paste0(p$name, "/DESCRIPTION"), exdir = tempdir())
  desc <- read.dcf(file.path(tempdir(), p$name, "DESCRIPTION"))
  fields <- intersect(deps_kinds, colnames(desc))
  needs <- unique(unlist(lapply(desc[1, fields], function(x) {
    trimws(sub("\\(.*", "", strsplit(x, ",")[[1]]))
  })))
  needs <- setdiff(needs[nzchar(needs)], c("R", rownames(installed.packages())))
  if (length(needs)) {
    install(needs,
      lib = target, repos = repo, type = "source", dependencies = deps_kinds,
      INSTALL_opts = install_opts, Ncpus = jobs
    )
  }
  install(dest, lib = target, repos = NULL, type = "source", INSTALL_opts = install_opts)
}

# The verdict: every requested package is in the target library, at the pinned version.
failed <- character()
for (p in parsed) {
  desc <- file.path(target, p$name, "DESCRIPTION")
  if (!file.exists(desc)) {
    failed <- c(failed, p$name)
  } else if (!is.na(p$version) && read.dcf(desc, "Version")[1, 1] != p$version) {
    note(sprintf("package '%s' installed as %s, not the pinned %s",
      p$name, read.dcf(desc, "Version")[1, 1], p$version))
    failed <- c(failed, p$name)
  }
}
if (length(failed)) {
  message("\nrlayer: packages not installed: ", paste(failed, collapse = ", "))
  if (length(problems)) message(paste0("  ", unique(problems), collapse = "\n"))
  quit(status = 1, save = "no")
}
# The layer holds the runtime closure only: what was asked for and its Depends and Imports,
# recursively. LinkingTo packages (headers: BH, RcppEigen, cpp11, plogr) were needed only
# to compile; they leave the layer's library now.
inst <- installed.packages(lib.loc = target, fields = c("Depends", "Imports"))
# R's own packages (the runtime layer installs into R's library) are never candidates.
inst <- inst[is.na(inst[, "Priority"]) | inst[, "Priority"] != "base", , drop = FALSE]
field_names <- function(x) {
  if (is.na(x)) return(character())
  n <- trimws(sub("\\(.*", "", strsplit(x, ",")[[1]]))
  n[nzchar(n)]
}
keep <- character()
todo <- names(parsed)
while (length(todo)) {
  p <- todo[1]
  todo <- todo[-1]
  if (p %in% keep || !p %in% rownames(inst)) next
  keep <- c(keep, p)
  todo <- c(todo, setdiff(c(field_names(inst[p, "Depends"]), field_names(inst[p, "Imports"])), keep))
}
build_only <- setdiff(rownames(inst), keep)
if (length(build_only)) {
  message("rlayer: needed only to compile (LinkingTo), left out of the layer: ",
    paste(build_only, collapse = ", "))
  unlink(file.path(target, build_only), recursive = TRUE)
}

# Reproducible layers: R stamps every installed package with the time of the install (the
# Built: field of DESCRIPTION and of Meta/package.rds), and R 4.2 ignores SOURCE_DATE_EPOCH
# for it. Put the zips' fixed time there instead (or SOURCE_DATE_EPOCH when set), so the
# same request gives a byte-identical packages layer. Only the date changes; R reads the
# R version and platform parts of Built, never the date.
epoch <- as.numeric(Sys.getenv("SOURCE_DATE_EPOCH", "315532800")) # 1980-01-01, as the zips
stamp <- format(as.POSIXct(epoch, origin = "1970-01-01", tz = "UTC"), "%Y-%m-%d %H:%M:%S UTC")
for (pkg in list.dirs(target, recursive = FALSE)) {
  meta <- file.path(pkg, "Meta", "package.rds")
  desc <- file.path(pkg, "DESCRIPTION")
  if (!file.exists(meta) || !file.exists(desc)) next
  info <- readRDS(meta)
  if (is.null(info$Built$Date)) next
  built <- sub(info$Built$Date, stamp, info$DESCRIPTION[["Built"]], fixed = TRUE)
  info$Built$Date <- stamp
  info$DESCRIPTION[["Built"]] <- built
  saveRDS(info, meta)
  lines <- readLines(desc, warn = FALSE)
  lines[startsWith(lines, "Built: ")] <- paste0("Built: ", built)
  writeLines(lines, desc, useBytes = TRUE)
}

installed <- installed.packages(lib.loc = target)[, "Version"]
message("rlayer: installed into ", target, ": ",
  paste(sprintf("%s %s", names(installed), installed), collapse = ", "))
