-- Issue 19: ODT, XLSX, ODS, PPTX and EPUB documents. Widening the check is
-- compatible with the code still running: it never writes the new names.
ALTER TABLE documents DROP CONSTRAINT documents_format_check;
ALTER TABLE documents ADD CONSTRAINT documents_format_check
    CHECK (format IN ('text', 'markdown', 'html', 'pdf', 'docx', 'odt', 'xlsx', 'ods', 'pptx', 'epub'));
