/// A unified diff of two texts, line by line, as `diff -u` prints it.
public enum UnifiedDiff {
    /// The diff from `old` to `new` with three lines of context; empty when they are equal.
    public static func make(old: String, new: String, oldName: String, newName: String, context: Int = 3) -> String {
        guard old != new else { return "" }
        let a = lines(old)
        let b = lines(new)
        // Walk both texts along the edit script: every line is kept, removed or inserted.
        enum Line { case keep(String), remove(String), insert(String) }
        var script: [Line] = []
        let difference = b.difference(from: a)
        var removals = Set<Int>()
        var insertions = Set<Int>()
        for change in difference {
            switch change {
            case .remove(let offset, _, _): removals.insert(offset)
            case .insert(let offset, _, _): insertions.insert(offset)
            }
        }
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            if i < a.count, removals.contains(i) {
                script.append(.remove(a[i]))
                i += 1
            } else if j < b.count, insertions.contains(j) {
                script.append(.insert(b[j]))
                j += 1
            } else {
                script.append(.keep(a[i]))
                i += 1
                j += 1
            }
        }
        var output = "--- \(oldName)\n+++ \(newName)\n"
        var index = 0
        var oldLine = 1
        var newLine = 1
        while index < script.count {
            guard case .keep = script[index] else {
                // A hunk: from `context` lines before this change to `context` lines after the last change that
                // is within 2 × context of the one before it.
                let start = max(0, index - context)
                var end = index
                var lastChange = index
                while end < script.count {
                    if case .keep = script[end] {
                        if end - lastChange > 2 * context { break }
                    } else {
                        lastChange = end
                    }
                    end += 1
                }
                end = min(script.count, lastChange + context + 1)
                let leading = index - start
                let hunkOldStart = oldLine - leading
                let hunkNewStart = newLine - leading
                var oldCount = 0
                var newCount = 0
                var body = ""
                for line in script[start..<end] {
                    switch line {
                    case .keep(let text):
                        body += " " + text + "\n"
                        oldCount += 1
                        newCount += 1
                    case .remove(let text):
                        body += "-" + text + "\n"
                        oldCount += 1
                    case .insert(let text):
                        body += "+" + text + "\n"
                        newCount += 1
                    }
                }
                for line in script[index..<end] {
                    switch line {
                    case .keep:
                        oldLine += 1
                        newLine += 1
                    case .remove: oldLine += 1
                    case .insert: newLine += 1
                    }
                }
                output += "@@ -\(range(hunkOldStart, oldCount)) +\(range(hunkNewStart, newCount)) @@\n" + body
                index = end
                continue
            }
            oldLine += 1
            newLine += 1
            index += 1
        }
        return output
    }

    private static func range(_ start: Int, _ count: Int) -> String {
        count == 1 ? "\(start)" : "\(count == 0 ? start - 1 : start),\(count)"
    }

    private static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}
